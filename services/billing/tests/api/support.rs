//! The test harness: the real billing service on port 0, against its own Postgres database and
//! its own NATS server, on a test clock, called through the generated gRPC client with tokens
//! from a test issuer that stands in for identity. Other services' events are published on
//! JetStream exactly as their outbox relays publish them.

use std::collections::HashMap;

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use keel_billing::Settings;
use keel_billing::domain::webhook;
use keel_kernel::app::Running;
use keel_kernel::auth::roles;
use keel_kernel::clock::{Clock, TestClock};
use keel_kernel::config::{Config, DatabaseConfig};
use keel_kernel::grpc::timestamp;
use keel_kernel::{TenantId, UserId};
use keel_proto::billing::v1 as pb;
use keel_proto::billing::v1::billing_service_client::BillingServiceClient;
use keel_proto::events::v1::{Actor, EventEnvelope, actor};
use keel_testkit::EventLog;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use prost::Message;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The webhook provider and secrets the tests configure.
pub const PROVIDER: &str = "stripe";
pub const SECRET: &str = "whsec_test_current";
pub const OLD_SECRET: &str = "whsec_test_previous";

/// Where test clocks start: a Monday mid-month, far from month ends.
pub fn start_time() -> DateTime<Utc> {
    at("2027-03-15T09:00:00Z")
}

pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 time")
}

pub use keel_testkit::Bearer;

pub type Authed = InterceptedService<Channel, Bearer>;
pub type Client = BillingServiceClient<Authed>;

pub struct TestApp {
    pub issuer: TestIssuer,
    pub nats: TestNats,
    pub db: TestDatabase,
    /// The service role's database settings (no BYPASSRLS), for RLS assertions.
    pub db_config: DatabaseConfig,
    pub clock: TestClock,
    pub channel: Channel,
    pub settings: Settings,
    js: jetstream::Context,
    pub running: Option<Running>,
}

/// The settings tests run with: the standard catalogue, 21 % tax, one webhook provider with a
/// current and a previous secret.
pub fn test_settings() -> Settings {
    let mut settings = Settings {
        tax_rate_basis_points: 2100,
        ..Settings::default()
    };
    settings.webhook_providers.insert(
        PROVIDER.into(),
        serde_yaml_provider(&format!("{SECRET},{OLD_SECRET}")),
    );
    settings
}

fn serde_yaml_provider(secrets: &str) -> keel_billing::settings::WebhookProvider {
    serde_json::from_value(serde_json::json!({ "signing_secrets": secrets }))
        .expect("a webhook provider")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(test_settings()).await
    }

    pub async fn spawn_with(settings: Settings) -> TestApp {
        let issuer = TestIssuer::start().await;
        let nats = TestNats::start().await;
        let db = TestDatabase::create().await;
        let db_config = db.provision("billing").await;
        let clock = TestClock::new(start_time());
        let client = stack::connect_nats(&nats.url()).await;
        let mut app = TestApp {
            issuer,
            nats,
            db,
            db_config,
            clock,
            channel: Channel::from_static("http://127.0.0.1:1").connect_lazy(),
            settings,
            js: jetstream::new(client),
            running: None,
        };
        app.start().await;
        app
    }

    /// The service's config on this app's database and broker.
    pub fn config(&self) -> Config<Settings> {
        let mut config = stack::config_with(
            "billing",
            self.db_config.clone(),
            stack::nats_config(&self.nats.url()),
            self.settings.clone(),
        );
        config.auth = self.issuer.auth_config();
        config
    }

    /// Start (or start again, after `stop_service`) the service on the same database.
    pub async fn start(&mut self) {
        let running = keel_billing::build_with_clock(self.config(), self.clock.shared())
            .await
            .expect("billing starts");
        self.channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to billing");
        self.running = Some(running);
    }

    pub async fn stop_service(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean shutdown");
        }
    }

    /// Run every job due at the test clock's time (period closes, dunning); how many this call
    /// ran. The service's own worker polls too and may hold a due job (claimed with SKIP LOCKED)
    /// while this runs: wait until no due job is left undone, so what follows sees its effect.
    pub async fn run_jobs(&self) -> usize {
        let jobs = &self.running.as_ref().expect("running").jobs;
        let admin = self.admin_pool().await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut ran = 0;
        loop {
            ran += jobs.run_due().await.expect("jobs run");
            let (pending,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM billing.jobs \
                  WHERE done_at IS NULL AND given_up_at IS NULL AND run_at <= $1",
            )
            .bind(self.clock.now())
            .fetch_one(&admin)
            .await
            .expect("pending jobs");
            if pending == 0 {
                admin.close().await;
                return ran;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{pending} due jobs still undone after 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Move the clock to `to` and run what fell due.
    pub async fn advance_to(&self, to: DateTime<Utc>) {
        self.clock.set(to);
        self.run_jobs().await;
    }

    fn bearer(token: &str) -> Bearer {
        Bearer(Some(
            format!("Bearer {token}").parse().expect("ascii token"),
        ))
    }

    pub fn billing(&self, token: &str) -> Client {
        BillingServiceClient::with_interceptor(self.channel.clone(), Self::bearer(token))
    }

    pub fn anonymous(&self) -> Client {
        BillingServiceClient::with_interceptor(self.channel.clone(), Bearer(None))
    }

    /// A user's token for `tenant` with a built-in role.
    pub fn token(&self, tenant: TenantId, role: &str) -> String {
        self.issuer.token(
            TokenSpec::user(UserId::new())
                .tenant(tenant)
                .role(role)
                .perms(roles::built_in(role).expect("a built-in role")),
        )
    }

    pub fn owner(&self, tenant: TenantId) -> Client {
        self.billing(&self.token(tenant, roles::OWNER))
    }

    /// A platform administrator: the platform role's permissions on a token scoped to no tenant.
    pub fn platform_admin(&self) -> Client {
        self.billing(
            &self.issuer.token(
                TokenSpec::any_user()
                    .role(roles::PLATFORM_ADMIN)
                    .perms(roles::PLATFORM_PERMISSIONS.iter().copied()),
            ),
        )
    }

    /// A service (the ai-gateway, say) allowed to record usage.
    pub fn metering_service(&self) -> Client {
        self.billing(
            &self
                .issuer
                .token(TokenSpec::service("ai-gateway").perm("billing.usage.record")),
        )
    }

    /// The id of `plan`'s flat price.
    pub async fn flat_price(&self, plan: &str) -> String {
        let plan = self
            .owner(TenantId::new())
            .get_plan(pb::GetPlanRequest {
                plan_id: plan.into(),
            })
            .await
            .expect("get plan")
            .into_inner();
        plan.prices
            .iter()
            .find(|p| p.meter_id.is_empty())
            .expect("a flat price")
            .id
            .clone()
    }

    /// Subscribe a fresh tenant to `plan` at the clock's time.
    pub async fn subscribed_tenant(&self, plan: &str) -> (TenantId, pb::Subscription) {
        let tenant = TenantId::new();
        let subscription = self.subscribe(tenant, plan).await;
        (tenant, subscription)
    }

    pub async fn subscribe(&self, tenant: TenantId, plan: &str) -> pb::Subscription {
        let price_id = self.flat_price(plan).await;
        self.owner(tenant)
            .create_subscription(pb::CreateSubscriptionRequest {
                tenant_id: tenant.to_string(),
                subscription: Some(pb::Subscription {
                    price_id,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create subscription")
            .into_inner()
    }

    /// Record usage through RecordUsage, as a metering service.
    pub async fn record_usage(
        &self,
        tenant: TenantId,
        meter: &str,
        quantity: i64,
        occur_time: DateTime<Utc>,
        key: &str,
    ) -> pb::UsageRecord {
        self.metering_service()
            .record_usage(pb::RecordUsageRequest {
                tenant_id: tenant.to_string(),
                usage_record: Some(pb::UsageRecord {
                    meter_id: meter.into(),
                    quantity,
                    occur_time: Some(timestamp(occur_time)),
                    idempotency_key: key.into(),
                    ..Default::default()
                }),
            })
            .await
            .expect("record usage")
            .into_inner()
    }

    pub async fn invoices(&self, tenant: TenantId) -> Vec<pb::Invoice> {
        self.owner(tenant)
            .list_invoices(pb::ListInvoicesRequest {
                tenant_id: tenant.to_string(),
                page_size: 200,
                ..Default::default()
            })
            .await
            .expect("list invoices")
            .into_inner()
            .invoices
    }

    pub async fn subscriptions(&self, tenant: TenantId) -> Vec<pb::Subscription> {
        self.owner(tenant)
            .list_subscriptions(pb::ListSubscriptionsRequest {
                tenant_id: tenant.to_string(),
                page_size: 200,
                ..Default::default()
            })
            .await
            .expect("list subscriptions")
            .into_inner()
            .subscriptions
    }

    /// Usage of `meter` over [start, end) as the tenant's owner sees it.
    pub async fn usage_of(
        &self,
        tenant: TenantId,
        meter: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> i64 {
        self.owner(tenant)
            .list_usage_summaries(pb::ListUsageSummariesRequest {
                tenant_id: tenant.to_string(),
                start_time: Some(timestamp(start)),
                end_time: Some(timestamp(end)),
                meter_id: meter.into(),
                ..Default::default()
            })
            .await
            .expect("usage summaries")
            .into_inner()
            .usage_summaries
            .first()
            .map_or(0, |s| s.quantity)
    }

    /// Publish another service's event on JetStream as its outbox relay would; returns the event
    /// id. `event_id` lets a test deliver the same event twice under two message ids.
    pub async fn publish<M: prost::Name>(
        &self,
        event_type: &str,
        tenant: TenantId,
        event_id: &str,
        occurred_at: DateTime<Utc>,
        payload: &M,
    ) {
        let envelope = EventEnvelope {
            event_id: event_id.into(),
            event_type: event_type.into(),
            tenant_id: tenant.to_string(),
            aggregate_type: event_type.split('.').nth(1).unwrap_or_default().into(),
            aggregate_id: tenant.to_string(),
            aggregate_version: 1,
            occurred_at: Some(timestamp(occurred_at)),
            actor: Some(Actor {
                kind: actor::Kind::System as i32,
                id: "test".into(),
            }),
            correlation_id: event_id.into(),
            causation_id: String::new(),
            trace_context: HashMap::new(),
            payload: Some(prost_types::Any::from_msg(payload).expect("any")),
            source: event_type.split('.').next().unwrap_or_default().into(),
        };
        // A fresh message id each time: the stream's own de-duplication must not be what keeps a
        // redelivered event from counting twice.
        let message = jetstream::message::PublishMessage::build()
            .payload(envelope.encode_to_vec().into())
            .message_id(uuid::Uuid::new_v4().to_string());
        self.js
            .send_publish(format!("events.{event_type}"), message)
            .await
            .expect("publish")
            .await
            .expect("publish ack");
    }

    /// A signed webhook delivery, as the edge hands it over.
    pub fn webhook(&self, body: &str, secret: &str, at: DateTime<Utc>) -> pb::IngestWebhookRequest {
        pb::IngestWebhookRequest {
            provider: PROVIDER.into(),
            payload: body.as_bytes().to_vec(),
            signature: webhook::sign(body.as_bytes(), secret, at.timestamp()).expect("sign"),
        }
    }

    /// A superuser pool on the test database (bypasses RLS: for assertions only).
    pub async fn admin_pool(&self) -> sqlx::PgPool {
        self.db.admin_pool().await
    }

    /// A pool connected as billing's own role, with its search path.
    pub async fn service_pool(&self) -> sqlx::PgPool {
        keel_kernel::db::connect(
            "billing-test",
            &self.db_config,
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("service pool")
    }

    /// A reader of everything this app's NATS server holds in its `EVENTS` stream.
    pub async fn events(&self) -> EventLog {
        EventLog::connect(&self.nats.url()).await
    }
}

/// A Stripe-style webhook body for `invoice` of `tenant`.
pub fn webhook_body(event_id: &str, event_type: &str, tenant: &str, invoice: &str) -> String {
    serde_json::json!({
        "id": event_id,
        "type": event_type,
        "data": { "object": { "metadata": { "keel_tenant_id": tenant, "keel_invoice_id": invoice } } }
    })
    .to_string()
}
