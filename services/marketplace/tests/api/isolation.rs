//! Isolation: between tenants (token and row-level security) and between buyers.

use keel_kernel::{ErrorCode, TenantId, db};
use keel_proto::marketplace::v1 as pb;
use keel_testkit::assert_status;

use crate::support::{TestApp, fulfill, order};

const TENANT_TABLES: [&str; 5] = ["disputes", "listings", "offers", "orders", "tenant_plans"];

#[tokio::test]
async fn every_tenant_table_follows_the_row_level_security_convention() {
    let app = TestApp::spawn().await;
    let admin = app.db.admin_pool().await;
    let violations = db::check_tenant_tables(&admin, "marketplace")
        .await
        .expect("check");
    assert!(violations.is_empty(), "{violations:?}");
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
          WHERE n.nspname = 'marketplace' AND c.relkind = 'r' \
            AND c.relname NOT IN ('outbox', 'inbox', 'dead_letters', 'jobs', 'idempotency_keys') \
          ORDER BY 1",
    )
    .fetch_all(&admin)
    .await
    .expect("tables");
    let tables: Vec<String> = tables.into_iter().map(|(t,)| t).collect();
    assert_eq!(tables, TENANT_TABLES);
    admin.close().await;
    app.stop().await;
}

#[tokio::test]
async fn one_tenant_never_sees_or_orders_another_tenants_listings() {
    let app = TestApp::spawn().await;
    let (home, away) = (TenantId::new(), TenantId::new());
    let seller = app.user(home);
    let listing = app.listing(&seller, 100, "EUR", 5).await;
    let stranger = app.user(away);

    // Naming the other tenant with one's own token is refused outright.
    assert_status(
        stranger
            .client
            .clone()
            .get_listing(pb::GetListingRequest {
                tenant_id: home.to_string(),
                listing_id: listing.id.clone(),
            })
            .await,
        ErrorCode::Authz,
    );
    // Its listing id in one's own tenant does not exist.
    assert_status(
        crate::support::try_order(&stranger, &listing.id, 1, "").await,
        ErrorCode::NotFound,
    );
    let found = stranger
        .client
        .clone()
        .list_listings(pb::ListListingsRequest {
            tenant_id: away.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(found.listings.is_empty());

    // Row-level security: the service's own role sees nothing of a tenant outside its scope.
    let pool = keel_kernel::db::connect(
        "marketplace-test",
        &app.db_config,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    let mut tx = db::tenant_tx(&pool, away).await.unwrap();
    let (visible,): (i64,) = sqlx::query_as("SELECT count(*) FROM listings")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(visible, 0);
    drop(tx);
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn buyers_see_only_their_own_orders_unless_they_may_read_all() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, alice, bob, operator) = (
        app.user(tenant),
        app.user(tenant),
        app.user(tenant),
        app.operator(tenant),
    );
    let listing = app.listing(&seller, 100, "EUR", 10).await;
    let of_alice = order(&alice, &listing.id, 1).await;
    order(&bob, &listing.id, 2).await;

    let list = |user: &crate::support::User| {
        let mut client = user.client.clone();
        let tenant_id = user.tenant_id();
        async move {
            client
                .list_orders(pb::ListOrdersRequest {
                    tenant_id,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .orders
        }
    };
    let seen_by_bob = list(&bob).await;
    assert_eq!(seen_by_bob.len(), 1);
    assert_eq!(seen_by_bob[0].buyer_id, bob.id.to_string());
    assert_eq!(list(&seller).await.len(), 2);
    assert_eq!(list(&operator).await.len(), 2);
    assert_status(
        bob.client
            .clone()
            .get_order(pb::GetOrderRequest {
                tenant_id: bob.tenant_id(),
                order_id: of_alice.id.clone(),
            })
            .await,
        ErrorCode::NotFound,
    );
    // Nor may Bob act on it.
    assert_status(fulfill(&bob, &of_alice.id).await, ErrorCode::NotFound);
    operator
        .client
        .clone()
        .get_order(pb::GetOrderRequest {
            tenant_id: operator.tenant_id(),
            order_id: of_alice.id.clone(),
        })
        .await
        .unwrap();
    app.stop().await;
}
