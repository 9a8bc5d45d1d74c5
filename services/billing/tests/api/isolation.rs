//! Tenant isolation: one tenant's token reads nothing of another's, and the database underneath
//! enforces it too (row-level security on every tenant table).

use keel_kernel::auth::roles;
use keel_kernel::{ErrorCode, TenantId, db};
use keel_proto::billing::v1 as pb;
use keel_testkit::assert_status;

use crate::support::{TestApp, at, start_time};

#[tokio::test]
async fn every_tenant_table_follows_the_row_level_security_convention() {
    let app = TestApp::spawn().await;
    let pool = app.service_pool().await;
    let violations = db::check_tenant_tables(&pool, "billing").await.unwrap();
    assert!(violations.is_empty(), "{violations:?}");
}

#[tokio::test]
async fn another_tenants_subscription_and_invoices_are_out_of_reach() {
    let app = TestApp::spawn().await;
    let (victim, subscription) = app.subscribed_tenant("pro").await;
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    let invoice = app.invoices(victim).await.remove(0);
    let attacker = TenantId::new();
    let owner = app.owner(attacker);
    // Naming the victim's tenant with the attacker's token: AUTHZ.
    assert_status(
        owner
            .clone()
            .get_invoice(pb::GetInvoiceRequest {
                tenant_id: victim.to_string(),
                invoice_id: invoice.id.clone(),
            })
            .await,
        ErrorCode::Authz,
    );
    assert_status(
        owner
            .clone()
            .list_subscriptions(pb::ListSubscriptionsRequest {
                tenant_id: victim.to_string(),
                ..Default::default()
            })
            .await,
        ErrorCode::Authz,
    );
    assert_status(
        owner
            .clone()
            .get_billing_entitlements(pb::GetBillingEntitlementsRequest {
                tenant_id: victim.to_string(),
            })
            .await,
        ErrorCode::Authz,
    );
    // Naming the victim's ids under the attacker's own tenant: NOT_FOUND.
    assert_status(
        owner
            .clone()
            .get_invoice(pb::GetInvoiceRequest {
                tenant_id: attacker.to_string(),
                invoice_id: invoice.id.clone(),
            })
            .await,
        ErrorCode::NotFound,
    );
    assert_status(
        owner
            .clone()
            .get_subscription(pb::GetSubscriptionRequest {
                tenant_id: attacker.to_string(),
                subscription_id: subscription.id.clone(),
            })
            .await,
        ErrorCode::NotFound,
    );
    assert_status(
        owner
            .clone()
            .cancel_subscription(pb::CancelSubscriptionRequest {
                tenant_id: attacker.to_string(),
                subscription_id: subscription.id,
                immediately: true,
            })
            .await,
        ErrorCode::NotFound,
    );
    let admin = app.billing(&app.token(attacker, roles::ADMIN));
    assert_status(
        admin
            .clone()
            .list_usage_summaries(pb::ListUsageSummariesRequest {
                tenant_id: victim.to_string(),
                ..Default::default()
            })
            .await,
        ErrorCode::Authz,
    );
}

#[tokio::test]
async fn a_tenant_transaction_sees_no_other_tenants_rows() {
    let app = TestApp::spawn().await;
    let (a, _) = app.subscribed_tenant("pro").await;
    let (b, _) = app.subscribed_tenant("pro").await;
    app.record_usage(a, "ai.tokens", 5, start_time(), "a").await;
    app.record_usage(b, "ai.tokens", 7, start_time(), "b").await;
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    let pool = app.service_pool().await;
    for table in [
        "subscriptions",
        "usage_records",
        "invoices",
        "invoice_lines",
        "billing_tenants",
    ] {
        let mut tx = db::tenant_tx(&pool, a).await.unwrap();
        let tenants: Vec<(TenantId,)> =
            sqlx::query_as(&format!("SELECT DISTINCT tenant_id FROM {table}"))
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        assert_eq!(tenants, vec![(a,)], "{table}");
        let mut unscoped = db::unscoped_tx(&pool).await.unwrap();
        let (count,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *unscoped)
            .await
            .unwrap();
        assert_eq!(count, 0, "{table} without a tenant");
    }
}
