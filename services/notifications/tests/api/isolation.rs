//! Tenant isolation in the database: every table follows the convention, and row-level security
//! hides one tenant's rows from another's transaction.

use keel_kernel::db;

use crate::support::{TestApp, unique_email};

#[tokio::test]
async fn row_level_security_hides_other_tenants_rows_in_every_notifications_table() {
    let app = TestApp::spawn().await;
    let alice = app.register(&unique_email("alice"), "Alice").await;
    let bob = app.register(&unique_email("bob"), "Bob").await;
    let (ours, token) = app.create_tenant(&alice, "Ours").await;
    let (theirs, _) = app.create_tenant(&bob, "Theirs").await;
    app.inbox(&token, ours, 1).await;
    let pool = app.service_pool().await;
    let violations = db::check_tenant_tables(&pool, &app.db_config.schema)
        .await
        .expect("check");
    assert!(violations.is_empty(), "{violations:?}");
    for table in ["notifications", "inbox_heads", "tenants"] {
        let mut tx = db::tenant_tx(&pool, ours).await.unwrap();
        let (ours_see,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = $1"
        ))
        .bind(ours.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert!(ours_see >= 1, "{table}");
        tx.commit().await.unwrap();
        let mut tx = db::tenant_tx(&pool, theirs).await.unwrap();
        let (theirs_see,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = $1"
        ))
        .bind(ours.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(theirs_see, 0, "{table}");
        tx.commit().await.unwrap();
    }
}
