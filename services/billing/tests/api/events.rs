//! Usage and subscriptions from other services' events, through the real JetStream.

use keel_billing::domain::webhook;
use keel_kernel::grpc::timestamp;
use keel_kernel::{TenantId, UserId};
use keel_proto::ai::v1 as ai;
use keel_proto::billing::v1 as pb;
use keel_proto::marketplace::v1 as marketplace;
use keel_proto::tenancy::v1 as tenancy;
use keel_testkit::eventually;

use crate::support::{TestApp, at, start_time};

fn ai_usage(
    tenant: TenantId,
    tokens: i64,
    created: chrono::DateTime<chrono::Utc>,
) -> ai::UsageRecorded {
    ai::UsageRecorded {
        record: Some(ai::UsageRecord {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.to_string(),
            usage: Some(ai::TokenUsage {
                prompt_tokens: tokens / 2,
                completion_tokens: tokens - tokens / 2,
                total_tokens: tokens,
                ..Default::default()
            }),
            create_time: Some(timestamp(created)),
            ..Default::default()
        }),
        counted_by: "provider".into(),
    }
}

async fn wait_for_usage(app: &TestApp, tenant: TenantId, meter: &str, expected: i64) {
    let (start, end) = (at("2000-01-01T00:00:00Z"), at("2100-01-01T00:00:00Z"));
    eventually(|| async {
        (app.usage_of(tenant, meter, start, end).await == expected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn ai_usage_events_become_an_invoice_line_above_the_included_tokens() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.subscribed_tenant("pro").await;
    let during = start_time() + chrono::Duration::days(3);
    for tokens in [600_000, 500_000, 150_000] {
        let event = uuid::Uuid::now_v7().to_string();
        app.publish(
            "ai.usage.recorded",
            tenant,
            &event,
            during,
            &ai_usage(tenant, tokens, during),
        )
        .await;
    }
    wait_for_usage(&app, tenant, "ai.tokens", 1_250_000).await;
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    let invoices = app.invoices(tenant).await;
    assert_eq!(invoices.len(), 1);
    let invoice = &invoices[0];
    let tokens = invoice
        .line_items
        .iter()
        .find(|l| l.meter_id == "ai.tokens")
        .expect("a token line");
    assert_eq!(
        (tokens.quantity, tokens.unit_amount, tokens.amount),
        (250_000, 1, 250_000)
    );
    let flat = invoice
        .line_items
        .iter()
        .find(|l| l.meter_id.is_empty())
        .unwrap();
    assert_eq!(flat.amount, 2_900);
    // 252,900 + 21 % tax (53,109) = 306,009.
    assert_eq!(
        (invoice.subtotal, invoice.tax, invoice.total),
        (252_900, 53_109, 306_009)
    );
    assert_eq!(invoice.state, pb::InvoiceState::Open as i32);
    assert_eq!(invoice.number, "KEEL-2027-000001");
    let finalized = app
        .events()
        .await
        .of_type("billing.invoice.finalized", 1)
        .await;
    assert_eq!(finalized.len(), 1);
    let _ = webhook::INVOICE_PAID;
}

#[tokio::test]
async fn an_event_delivered_twice_is_counted_once() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let now = start_time();
    let event = uuid::Uuid::now_v7().to_string();
    let usage = ai_usage(tenant, 1_234, now);
    app.publish("ai.usage.recorded", tenant, &event, now, &usage)
        .await;
    app.publish("ai.usage.recorded", tenant, &event, now, &usage)
        .await;
    let marker = uuid::Uuid::now_v7().to_string();
    app.publish(
        "ai.usage.recorded",
        tenant,
        &marker,
        now,
        &ai_usage(tenant, 1, now),
    )
    .await;
    // The marker, published last, is counted once the duplicate has been handled.
    wait_for_usage(&app, tenant, "ai.tokens", 1_235).await;
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM billing.usage_records")
        .fetch_one(&app.admin_pool().await)
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn completed_marketplace_orders_are_counted() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    for _ in 0..3 {
        let order = marketplace::OrderCompleted {
            order_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.to_string(),
            total_amount: 5_000,
            currency: "EUR".into(),
            complete_time: Some(timestamp(start_time())),
            ..Default::default()
        };
        let event = uuid::Uuid::now_v7().to_string();
        app.publish(
            "marketplace.order.completed",
            tenant,
            &event,
            start_time(),
            &order,
        )
        .await;
    }
    wait_for_usage(&app, tenant, "marketplace.orders", 3).await;
}

#[tokio::test]
async fn a_created_tenant_is_subscribed_to_the_default_plan_once_however_often_the_event_comes() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let created_at = at("2027-01-31T12:00:00Z");
    app.clock.set(created_at);
    let created = tenancy::TenantCreated {
        tenant_id: tenant.to_string(),
        name: "Acme".into(),
        slug: "acme".into(),
        state: tenancy::TenantState::Active as i32,
        created_by: UserId::new().to_string(),
    };
    let event = uuid::Uuid::now_v7().to_string();
    app.publish(
        "tenancy.tenant.created",
        tenant,
        &event,
        created_at,
        &created,
    )
    .await;
    app.publish(
        "tenancy.tenant.created",
        tenant,
        &event,
        created_at,
        &created,
    )
    .await;
    let subscription =
        eventually(|| async { app.subscriptions(tenant).await.into_iter().next() }).await;
    assert_eq!(subscription.plan_id, "free");
    assert_eq!(
        subscription.current_period_start_time,
        Some(timestamp(created_at))
    );
    assert_eq!(
        subscription.current_period_end_time,
        Some(timestamp(at("2027-02-28T12:00:00Z"))),
        "a month-end anchor is clamped"
    );
    // A replay under a new event id (a re-sent event) changes nothing either.
    app.publish(
        "tenancy.tenant.created",
        tenant,
        &uuid::Uuid::now_v7().to_string(),
        created_at,
        &created,
    )
    .await;
    let marker = uuid::Uuid::now_v7().to_string();
    app.publish(
        "ai.usage.recorded",
        tenant,
        &marker,
        created_at,
        &ai_usage(tenant, 1, created_at),
    )
    .await;
    wait_for_usage(&app, tenant, "ai.tokens", 1).await;
    eventually(|| async {
        let log = app.events().await;
        (log.of_type("billing.subscription.created", 1).await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(app.subscriptions(tenant).await.len(), 1);

    // The free plan's period closes into a zero invoice, PAID at once.
    app.advance_to(at("2027-02-28T12:00:00Z")).await;
    let invoices = app.invoices(tenant).await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].total, 0);
    assert_eq!(invoices[0].state, pb::InvoiceState::Paid as i32);

    let deleted = tenancy::TenantDeleted {
        tenant_id: tenant.to_string(),
    };
    app.publish(
        "tenancy.tenant.deleted",
        tenant,
        &uuid::Uuid::now_v7().to_string(),
        created_at,
        &deleted,
    )
    .await;
    eventually(|| async {
        let subscriptions = app.subscriptions(tenant).await;
        (subscriptions[0].state == pb::SubscriptionState::Canceled as i32).then_some(())
    })
    .await;
}

#[tokio::test]
async fn members_added_and_removed_are_counted_as_peak_seats() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.subscribed_tenant("free").await;
    let users: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
    for user in &users {
        let added = tenancy::MemberAdded {
            tenant_id: tenant.to_string(),
            user_id: user.to_string(),
            role: "member".into(),
        };
        app.publish(
            "tenancy.member.added",
            tenant,
            &uuid::Uuid::now_v7().to_string(),
            start_time(),
            &added,
        )
        .await;
    }
    let removed = tenancy::MemberRemoved {
        tenant_id: tenant.to_string(),
        user_id: users[0].to_string(),
    };
    app.publish(
        "tenancy.member.removed",
        tenant,
        &uuid::Uuid::now_v7().to_string(),
        start_time(),
        &removed,
    )
    .await;
    let (count,) = eventually(|| async {
        let rows: (i64,) =
            sqlx::query_as("SELECT count(*) FROM billing.usage_records WHERE meter_id = 'seats'")
                .fetch_one(&app.admin_pool().await)
                .await
                .unwrap();
        (rows.0 == 4).then_some(rows)
    })
    .await;
    assert_eq!(count, 4);
    let entitlements = app
        .owner(tenant)
        .get_billing_entitlements(pb::GetBillingEntitlementsRequest {
            tenant_id: tenant.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    let seats = entitlements
        .entitlements
        .iter()
        .find(|e| e.feature == "seats")
        .unwrap();
    assert_eq!((seats.limit, seats.used), (3, 3), "the peak of 1, 2, 3, 2");
    let (current,): (i64,) = sqlx::query_as("SELECT count(*) FROM billing.tenant_members")
        .fetch_one(&app.admin_pool().await)
        .await
        .unwrap();
    assert_eq!(current, 2);
}
