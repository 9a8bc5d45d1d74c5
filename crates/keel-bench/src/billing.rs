//! Billing: usage events per second from JetStream into meters (with duplicates), and the time to
//! close one period for many tenants.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use keel_billing::Settings;
use keel_kernel::auth::roles;
use keel_kernel::clock::TestClock;
use keel_kernel::grpc::timestamp;
use keel_kernel::{TenantId, UserId, nats};
use keel_proto::ai::v1 as ai;
use keel_proto::billing::v1 as pb;
use keel_proto::billing::v1::billing_service_client::BillingServiceClient;
use keel_proto::events::v1::EventEnvelope;
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use keel_testkit::{TestDatabase, TestNats, stack};
use prost::Message;

use crate::report::{Report, millis};

struct Bench {
    issuer: TestIssuer,
    _broker: TestNats,
    database: TestDatabase,
    clock: TestClock,
    running: keel_kernel::app::Running,
    js: jetstream::Context,
}

fn start() -> DateTime<Utc> {
    "2027-03-15T09:00:00Z"
        .parse()
        .unwrap_or_else(|_| Utc::now())
}

async fn setup() -> anyhow::Result<Bench> {
    let issuer = TestIssuer::start().await;
    let broker = TestNats::start().await;
    let database = TestDatabase::create().await;
    let mut config = stack::config_with(
        "billing",
        database.provision("billing").await,
        stack::nats_config(&broker.url()),
        Settings::default(),
    );
    config.auth = issuer.auth_config();
    config.database.max_connections = 16;
    let clock = TestClock::new(start());
    let js = jetstream::new(nats::connect("bench", &config.nats).await?);
    let running = keel_billing::build_with_clock(config, clock.shared())
        .await
        .map_err(|err| anyhow::anyhow!("billing starts: {err}"))?;
    Ok(Bench {
        issuer,
        _broker: broker,
        database,
        clock,
        running,
        js,
    })
}

fn usage_envelope(tenant: TenantId, event_id: &str, tokens: i64) -> EventEnvelope {
    let recorded = ai::UsageRecorded {
        record: Some(ai::UsageRecord {
            id: event_id.into(),
            tenant_id: tenant.to_string(),
            usage: Some(ai::TokenUsage {
                total_tokens: tokens,
                ..Default::default()
            }),
            create_time: Some(timestamp(start())),
            ..Default::default()
        }),
        counted_by: "provider".into(),
    };
    let mut envelope = EventEnvelope {
        event_id: event_id.into(),
        event_type: "ai.usage.recorded".into(),
        tenant_id: tenant.to_string(),
        aggregate_type: "usage".into(),
        aggregate_id: event_id.into(),
        aggregate_version: 1,
        occurred_at: Some(timestamp(start())),
        payload: Some(Default::default()),
        source: "ai-gateway".into(),
        ..Default::default()
    };
    // Packed by hand (what `Any::from_msg` does), so the bench needs no prost-types of its own.
    if let Some(any) = envelope.payload.as_mut() {
        any.type_url = <ai::UsageRecorded as prost::Name>::type_url();
        any.value = recorded.encode_to_vec();
    }
    envelope
}

/// Both billing figures: usage ingestion of `events` events, then period close for `tenants`.
pub async fn usage_and_period_close(
    report: &mut Report,
    events: usize,
    tenants: usize,
) -> anyhow::Result<()> {
    usage_ingestion(report, events).await?;
    period_close(report, tenants).await
}

/// `events` usage events over 100 tenants, 5 % of them delivered a second time (same event id,
/// another message id, so the stream's own de-duplication does not hide them), published first;
/// then the time until billing's consumer has stored every distinct one.
async fn usage_ingestion(report: &mut Report, events: usize) -> anyhow::Result<()> {
    let bench = setup().await?;
    let tenants: Vec<TenantId> = (0..100).map(|_| TenantId::new()).collect();
    let duplicates = events / 20;
    let distinct = events - duplicates;
    let mut expected: HashMap<TenantId, i64> = HashMap::new();
    let mut envelopes = Vec::with_capacity(events);
    for n in 0..distinct {
        let tenant = tenants[n % tenants.len()];
        let tokens = (n % 997) as i64 + 1;
        *expected.entry(tenant).or_default() += tokens;
        envelopes.push(usage_envelope(
            tenant,
            &uuid::Uuid::now_v7().to_string(),
            tokens,
        ));
    }
    for n in 0..duplicates {
        envelopes.push(envelopes[n * 19].clone());
    }
    let expected_total: i64 = expected.values().sum();
    let started = Instant::now();
    // Acks are awaited per 1,000: the client caps the publishes in flight, and waiting for all of
    // them only at the end would stall at that cap.
    for chunk in envelopes.chunks(1_000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for envelope in chunk {
            let message = jetstream::message::PublishMessage::build()
                .payload(envelope.encode_to_vec().into())
                .message_id(uuid::Uuid::new_v4().to_string());
            acks.push(
                bench
                    .js
                    .send_publish("events.ai.usage.recorded", message)
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
    }
    let admin = bench.database.admin_pool().await;
    let deadline = Instant::now() + Duration::from_secs(600);
    let (count, total) = loop {
        let (count, total): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), sum(quantity)::bigint FROM billing.usage_records")
                .fetch_one(&admin)
                .await?;
        if count as usize >= distinct || Instant::now() > deadline {
            break (count, total.unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    // Whatever was still in flight (a redelivered duplicate) has had its chance to double-count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (final_count, final_total): (i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), sum(quantity)::bigint FROM billing.usage_records")
            .fetch_one(&admin)
            .await?;
    let exact = final_count as usize == distinct && final_total == Some(expected_total);
    anyhow::ensure!(
        count as usize == distinct && total == expected_total,
        "expected {distinct} records summing to {expected_total}, found {count} summing to {total}"
    );
    report.section(
        "Billing: usage events into meters",
        &format!(
            "{events} `ai.usage.recorded` events ({duplicates} of them, 5 %, delivered twice under \
             new message ids) for 100 tenants, published to JetStream and consumed by billing's \
             `ai` consumer (inbox + unique (tenant, meter, idempotency key)), timed from the first \
             publish to the last distinct record stored."
        ),
        vec![
            ("events published".into(), events.to_string()),
            ("distinct usage records".into(), distinct.to_string()),
            ("elapsed".into(), millis(elapsed)),
            (
                "throughput".into(),
                format!("{:.0} events/s", events as f64 / elapsed.as_secs_f64()),
            ),
            (
                "sum exact (no duplicate counted)".into(),
                if exact { "yes".into() } else { "NO".into() },
            ),
        ],
    );
    bench
        .running
        .stop()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// `tenants` tenants on `pro` with usage; the clock moves past their period end and one
/// `run_due` closes every period (invoice with usage lines, number, renewal, next job).
async fn period_close(report: &mut Report, tenants: usize) -> anyhow::Result<()> {
    let bench = setup().await?;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", bench.running.grpc_addr))?
            .connect()
            .await?;
    let price = {
        let token = bench
            .issuer
            .token(TokenSpec::any_user().perm("billing.plan.read"));
        let mut request = tonic::Request::new(pb::GetPlanRequest {
            plan_id: "pro".into(),
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let plan = BillingServiceClient::new(channel.clone())
            .get_plan(request)
            .await?
            .into_inner();
        plan.prices
            .into_iter()
            .find(|p| p.meter_id.is_empty())
            .map(|p| p.id)
            .ok_or_else(|| anyhow::anyhow!("pro has no flat price"))?
    };
    let ids: Vec<TenantId> = (0..tenants).map(|_| TenantId::new()).collect();
    for chunk in ids.chunks(16) {
        let calls = chunk.iter().map(|tenant| {
            let token = bench.issuer.token(
                TokenSpec::user(UserId::new())
                    .tenant(*tenant)
                    .role(roles::OWNER)
                    .perms(roles::built_in(roles::OWNER).unwrap_or_default()),
            );
            let mut client = BillingServiceClient::new(channel.clone());
            let price = price.clone();
            let tenant = *tenant;
            async move {
                let mut request = tonic::Request::new(pb::CreateSubscriptionRequest {
                    tenant_id: tenant.to_string(),
                    subscription: Some(pb::Subscription {
                        price_id: price,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                });
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse()?);
                client.create_subscription(request).await?;
                anyhow::Ok(())
            }
        });
        for result in futures::future::join_all(calls).await {
            result?;
        }
    }
    bench.clock.set("2027-04-15T09:00:00Z".parse()?);
    let started = Instant::now();
    let ran = bench
        .running
        .jobs
        .run_due()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let elapsed = started.elapsed();
    let admin = bench.database.admin_pool().await;
    let (invoices, numbers): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT number) FROM billing.invoices")
            .fetch_one(&admin)
            .await?;
    anyhow::ensure!(
        invoices as usize == tenants && numbers == invoices,
        "expected {tenants} numbered invoices, found {invoices} ({numbers} numbers); {ran} jobs ran"
    );
    report.section(
        "Billing: period close",
        &format!(
            "{tenants} tenants subscribed to `pro`; the test clock moves past their period end and \
             one `run_due` closes every period: invoice (flat and usage lines, tax, a gap-free \
             number), renewal, next close scheduled, events in the outbox."
        ),
        vec![
            ("periods closed".into(), tenants.to_string()),
            ("elapsed".into(), millis(elapsed)),
            (
                "throughput".into(),
                format!("{:.0} closes/s", tenants as f64 / elapsed.as_secs_f64()),
            ),
        ],
    );
    bench
        .running
        .stop()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
