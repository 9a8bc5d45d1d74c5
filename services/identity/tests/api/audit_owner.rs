//! Issue 8, item 13: the role identity logs in as cannot undo the audit log's append-only
//! guarantee: the tables belong to a role it does not log in as.

use crate::support::{TestApp, unique_email};

/// What someone holding identity's database credentials would try, table by table.
fn attacks(table: &str) -> Vec<String> {
    vec![
        format!("ALTER TABLE {table} ADD COLUMN forged text"),
        format!("ALTER TABLE {table} DISABLE TRIGGER USER"),
        format!("ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"),
        format!("ALTER TABLE {table} OWNER TO CURRENT_USER"),
        format!("TRUNCATE {table}"),
        format!("DELETE FROM {table}"),
        format!("DROP TABLE {table}"),
        "CREATE OR REPLACE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql \
         AS $$ BEGIN RETURN OLD; END $$"
            .to_owned(),
        "DROP FUNCTION refuse_audit_change() CASCADE".to_owned(),
    ]
}

#[tokio::test]
async fn the_service_role_cannot_alter_drop_truncate_or_disable_the_audit_log() {
    let app = TestApp::spawn().await;
    // Something to protect, in both logs.
    app.owner_of_new_tenant(&unique_email("owner")).await;
    let pool = app.service_pool().await;
    for table in ["audit_log", "account_audit_log"] {
        for attack in attacks(table) {
            let mut tx = pool.begin().await.unwrap();
            let outcome = sqlx::query(&attack).execute(&mut *tx).await;
            assert!(outcome.is_err(), "the service role could run: {attack}");
            tx.rollback().await.unwrap();
        }
        // Granting itself back what it gave up is a no-op (Postgres only warns), never a grant.
        sqlx::query(&format!(
            "GRANT UPDATE, DELETE, TRUNCATE ON {table} TO CURRENT_USER"
        ))
        .execute(&pool)
        .await
        .ok();
        let (regained,): (bool,) = sqlx::query_as(
            "SELECT has_table_privilege(current_user, $1, 'UPDATE') \
                 OR has_table_privilege(current_user, $1, 'DELETE') \
                 OR has_table_privilege(current_user, $1, 'TRUNCATE')",
        )
        .bind(table)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(!regained, "the service role regained a right on {table}");
    }
    let admin = app.admin_pool().await;
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM identity.account_audit_log")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(rows > 0, "the account log was emptied");
}
