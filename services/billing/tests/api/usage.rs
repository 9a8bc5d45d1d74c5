//! RecordUsage (services only, exactly once per key) and usage summaries.

use futures::future::join_all;
use keel_kernel::auth::roles;
use keel_kernel::grpc::timestamp;
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::billing::v1 as pb;
use keel_testkit::tokens::TokenSpec;
use keel_testkit::{assert_status, violated_fields};

use crate::support::{TestApp, start_time};

fn usage(tenant: TenantId, meter: &str, quantity: i64, key: &str) -> pb::RecordUsageRequest {
    pb::RecordUsageRequest {
        tenant_id: tenant.to_string(),
        usage_record: Some(pb::UsageRecord {
            meter_id: meter.into(),
            quantity,
            occur_time: Some(timestamp(start_time())),
            idempotency_key: key.into(),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn twenty_concurrent_records_with_one_key_store_one_record() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.subscribed_tenant("pro").await;
    let results = join_all((0..20).map(|i| {
        let mut client = app.metering_service();
        // Different quantities: only the first record's may count.
        let request = usage(tenant, "ai.tokens", 100 + i, "completion-1");
        async move { client.record_usage(request).await }
    }))
    .await;
    let records: Vec<pb::UsageRecord> = results
        .into_iter()
        .map(|r| r.expect("recorded").into_inner())
        .collect();
    assert!(
        records.iter().all(|r| r == &records[0]),
        "the first record, every time"
    );
    let end = start_time() + chrono::Duration::days(1);
    assert_eq!(
        app.usage_of(tenant, "ai.tokens", start_time(), end).await,
        records[0].quantity
    );
    let (count,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM billing.usage_records WHERE idempotency_key = 'completion-1'",
    )
    .fetch_one(&app.admin_pool().await)
    .await
    .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn the_same_key_on_another_meter_is_another_record() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let a = app
        .record_usage(tenant, "ai.tokens", 5, start_time(), "k")
        .await;
    let b = app
        .record_usage(tenant, "marketplace.orders", 1, start_time(), "k")
        .await;
    assert_ne!(a.id, b.id);
}

#[tokio::test]
async fn only_services_record_usage() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    // An owner's `*` covers the permission's name, yet a person cannot declare usage.
    assert_status(
        app.owner(tenant)
            .record_usage(usage(tenant, "ai.tokens", 1, "k"))
            .await,
        ErrorCode::Authz,
    );
    let other_service = app.billing(&app.issuer.token(TokenSpec::service("delivery")));
    assert_status(
        other_service
            .clone()
            .record_usage(usage(tenant, "ai.tokens", 1, "k"))
            .await,
        ErrorCode::Authz,
    );
}

#[tokio::test]
async fn an_unknown_meter_or_a_negative_quantity_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let status = assert_status(
        app.metering_service()
            .record_usage(usage(tenant, "ai.images", 1, "k"))
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), vec!["usage_record.meter_id"]);
    let mut bad = usage(tenant, "ai.tokens", -1, "");
    if let Some(record) = bad.usage_record.as_mut() {
        record.occur_time = None;
    }
    let status = assert_status(
        app.metering_service().record_usage(bad).await,
        ErrorCode::Validation,
    );
    assert_eq!(
        violated_fields(&status),
        vec![
            "usage_record.quantity",
            "usage_record.occur_time",
            "usage_record.idempotency_key"
        ]
    );
}

#[tokio::test]
async fn summaries_default_to_the_current_period_and_aggregate_per_meter() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.subscribed_tenant("pro").await;
    let now = start_time();
    app.record_usage(tenant, "ai.tokens", 10, now, "t1").await;
    app.record_usage(tenant, "ai.tokens", 15, now, "t2").await;
    app.record_usage(
        tenant,
        "ai.tokens",
        1_000,
        now - chrono::Duration::days(1),
        "before",
    )
    .await;
    app.record_usage(tenant, "marketplace.orders", 1, now, "o1")
        .await;
    app.record_usage(tenant, "marketplace.orders", 1, now, "o2")
        .await;
    app.record_usage(tenant, "seats", 4, now - chrono::Duration::days(1), "s0")
        .await;
    app.record_usage(tenant, "seats", 2, now, "s1").await;
    app.clock.advance(chrono::Duration::hours(1));
    let summaries = app
        .billing(&app.token(tenant, roles::ADMIN))
        .list_usage_summaries(pb::ListUsageSummariesRequest {
            tenant_id: tenant.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .usage_summaries;
    let quantities: Vec<(String, i64)> = summaries
        .iter()
        .map(|s| (s.meter_id.clone(), s.quantity))
        .collect();
    assert_eq!(
        quantities,
        vec![
            ("ai.tokens".into(), 25),
            ("marketplace.orders".into(), 2),
            // A gauge: the level carried in from before the period (4) is its peak.
            ("seats".into(), 4),
        ]
    );
    assert_eq!(summaries[0].start_time, Some(timestamp(now)));
}
