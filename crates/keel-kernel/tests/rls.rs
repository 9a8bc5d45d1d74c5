//! Tenant isolation in the database: row-level security on the service's own role.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use keel_kernel::db;
use keel_kernel::ids::TenantId;
use keel_testkit::TestDatabase;
use sqlx::PgPool;

static NOTES: sqlx::migrate::Migrator = sqlx::migrate!("tests/migrations");

async fn service_pool(database: &TestDatabase, schema: &str) -> PgPool {
    let config = database.provision(schema).await;
    let pool = db::connect(schema, &config, std::time::Duration::from_secs(5))
        .await
        .expect("connect");
    db::migrate(&pool, &NOTES).await.expect("migrate");
    pool
}

async fn insert_note(pool: &PgPool, tenant: TenantId, body: &str) {
    let mut tx = db::tenant_tx(pool, tenant).await.expect("tx");
    sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, $3)")
        .bind(tenant)
        .bind(uuid::Uuid::now_v7())
        .bind(body)
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
}

async fn visible_bodies(conn: &mut sqlx::PgConnection) -> Vec<String> {
    // Deliberately no WHERE tenant_id: the policy must do the filtering.
    sqlx::query_scalar("SELECT body FROM notes ORDER BY body")
        .fetch_all(&mut *conn)
        .await
        .expect("select")
}

#[tokio::test]
async fn a_raw_select_in_a_tenant_transaction_sees_only_that_tenants_rows() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database, "demo").await;
    let (a, b) = (TenantId::new(), TenantId::new());
    insert_note(&pool, a, "a1").await;
    insert_note(&pool, a, "a2").await;
    insert_note(&pool, b, "b1").await;

    let mut tx = db::tenant_tx(&pool, a).await.unwrap();
    assert_eq!(visible_bodies(&mut tx).await, ["a1", "a2"]);
    tx.rollback().await.unwrap();

    let mut tx = db::tenant_tx(&pool, b).await.unwrap();
    assert_eq!(visible_bodies(&mut tx).await, ["b1"]);
}

#[tokio::test]
async fn with_no_tenant_set_a_tenant_table_returns_nothing() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database, "demo").await;
    insert_note(&pool, TenantId::new(), "secret").await;

    let mut tx = db::unscoped_tx(&pool).await.unwrap();
    assert!(visible_bodies(&mut tx).await.is_empty());
    tx.rollback().await.unwrap();
    // Nor on a pooled connection that served a tenant before: SET LOCAL ended with its transaction.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_tenant_cannot_write_rows_for_another_tenant() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database, "demo").await;
    let (a, b) = (TenantId::new(), TenantId::new());
    insert_note(&pool, b, "b1").await;

    let mut tx = db::tenant_tx(&pool, a).await.unwrap();
    let smuggled = sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, 'x')")
        .bind(b)
        .bind(uuid::Uuid::now_v7())
        .execute(&mut *tx)
        .await;
    assert!(
        smuggled.is_err(),
        "insert for another tenant must be refused by the policy"
    );
    tx.rollback().await.unwrap();

    let mut tx = db::tenant_tx(&pool, a).await.unwrap();
    let updated = sqlx::query("UPDATE notes SET body = 'overwritten'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let deleted = sqlx::query("DELETE FROM notes")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((updated.rows_affected(), deleted.rows_affected()), (0, 0));

    let mut tx = db::tenant_tx(&pool, b).await.unwrap();
    assert_eq!(visible_bodies(&mut tx).await, ["b1"]);
}

#[tokio::test]
async fn a_service_role_cannot_read_another_services_schema() {
    let database = TestDatabase::create().await;
    let first = service_pool(&database, "first").await;
    let _second = service_pool(&database, "second").await;
    let denied = sqlx::query("SELECT count(*) FROM second.notes")
        .fetch_one(&first)
        .await;
    let err = denied.expect_err("cross-schema read must be denied");
    assert!(err.to_string().contains("permission denied"), "{err}");
}

#[tokio::test]
async fn the_service_role_cannot_bypass_row_level_security() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database, "demo").await;
    let (bypass, superuser): (bool, bool) =
        sqlx::query_as("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!bypass && !superuser);
    // Turning RLS off for the session is not allowed either.
    let mut tx = db::unscoped_tx(&pool).await.unwrap();
    sqlx::query("SET LOCAL row_security = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    let attempt = sqlx::query("SELECT count(*) FROM notes")
        .fetch_one(&mut *tx)
        .await;
    assert!(
        attempt.is_err(),
        "row_security=off must raise for a policed table, not return rows"
    );
}

#[tokio::test]
async fn the_convention_check_flags_a_tenant_table_without_row_level_security() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database, "demo").await;
    assert!(
        db::check_tenant_tables(&pool, "demo")
            .await
            .unwrap()
            .is_empty()
    );

    sqlx::query("CREATE TABLE careless (id uuid PRIMARY KEY, tenant_id uuid)")
        .execute(&pool)
        .await
        .unwrap();
    let problems: Vec<String> = db::check_tenant_tables(&pool, "demo")
        .await
        .unwrap()
        .into_iter()
        .map(|v| format!("{}: {}", v.table, v.problem))
        .collect();
    assert_eq!(
        problems,
        [
            "careless: tenant_id is nullable",
            "careless: row-level security is not enabled and forced",
            "careless: no row-level security policy",
            "careless: primary key is not led by tenant_id",
        ]
    );
}

#[tokio::test]
async fn text_postgres_cannot_store_is_a_validation_error_not_an_internal_one() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database, "demo").await;
    let tenant = TenantId::new();
    let mut tx = db::tenant_tx(&pool, tenant).await.unwrap();
    let err = sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, $3)")
        .bind(tenant)
        .bind(uuid::Uuid::now_v7())
        .bind("nul \u{0} byte")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(
        keel_kernel::Error::from(err).code(),
        keel_kernel::ErrorCode::Validation
    );
}

#[tokio::test]
async fn a_duplicate_is_a_conflict_whose_message_names_no_constraint() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database, "demo").await;
    let tenant = TenantId::new();
    let id = uuid::Uuid::now_v7();
    let mut tx = db::tenant_tx(&pool, tenant).await.unwrap();
    let insert = || {
        sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, 'x')")
            .bind(tenant)
            .bind(id)
    };
    insert().execute(&mut *tx).await.unwrap();
    let err = keel_kernel::Error::from(insert().execute(&mut *tx).await.unwrap_err());
    assert_eq!(err.code(), keel_kernel::ErrorCode::Conflict);
    assert_eq!(err.constraint(), Some("notes_pkey"));
    assert!(!err.message().contains("notes_pkey"), "{}", err.message());
    let reworded = err.on_constraint("notes_pkey", "a note with this id already exists");
    assert_eq!(reworded.message(), "a note with this id already exists");
    let status = tonic::Status::from(reworded);
    assert!(!format!("{status:?}").contains("notes_pkey"), "{status:?}");
}

#[tokio::test]
async fn an_actor_kind_is_stored_as_text_and_an_unknown_one_is_refused() {
    use keel_kernel::ActorKind;
    let database = TestDatabase::create().await;
    let pool = service_pool(&database, "demo").await;
    let back: ActorKind = sqlx::query_scalar("SELECT $1::text")
        .bind(ActorKind::ApiKey)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(back, ActorKind::ApiKey);
    let text: String = sqlx::query_scalar("SELECT $1::text")
        .bind(ActorKind::ApiKey)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(text, "api_key");
    let unknown = sqlx::query_scalar::<_, ActorKind>("SELECT 'robot'::text")
        .fetch_one(&pool)
        .await;
    assert!(unknown.is_err(), "an unknown kind must not decode");
}
