//! Durable jobs and idempotent requests against the real Postgres: once across racing workers,
//! rolled back and retried on failure, due by the (test) clock; one effect per idempotency key
//! under concurrent retries.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use keel_kernel::clock::TestClock;
use keel_kernel::config::JobsConfig;
use keel_kernel::db;
use keel_kernel::idempotency::{Claim, IdempotencyKey, Scope};
use keel_kernel::ids::TenantId;
use keel_kernel::jobs::{self, Job, JobHandler, JobRunner, JobTx, NewJob};
use keel_kernel::{Error, ErrorCode, RequestMeta};
use keel_testkit::TestDatabase;
use prost_types::Timestamp;
use sqlx::PgPool;

static NOTES: sqlx::migrate::Migrator = sqlx::migrate!("tests/migrations");

async fn service_pool(database: &TestDatabase) -> PgPool {
    let config = database.provision("demo").await;
    let pool = db::connect("demo", &config, std::time::Duration::from_secs(5))
        .await
        .expect("connect");
    db::migrate(&pool, &NOTES).await.expect("migrate");
    pool
}

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2028-02-28T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Writes a note in the job's tenant, then fails if told to: what it wrote must roll back.
struct WriteNote {
    fail: bool,
}

impl JobHandler for WriteNote {
    fn run<'a>(&'a self, tx: &'a mut JobTx, job: &'a Job) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let body: String = job.payload()?;
            let tx = tx.tenant()?;
            let tenant = tx.tenant();
            sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, $3)")
                .bind(tenant)
                .bind(uuid::Uuid::now_v7())
                .bind(body)
                .execute(&mut **tx)
                .await?;
            if self.fail {
                return Err(Error::unavailable("the provider is down"));
            }
            Ok(())
        })
    }
}

fn runner(pool: &PgPool, clock: &TestClock, fail: bool) -> JobRunner {
    let mut handlers: HashMap<&'static str, Arc<dyn JobHandler>> = HashMap::new();
    handlers.insert("demo.note", Arc::new(WriteNote { fail }));
    JobRunner::new(
        pool.clone(),
        clock.shared(),
        JobsConfig {
            poll_interval_ms: 50,
            max_attempts: 3,
        },
        handlers,
    )
}

async fn schedule(pool: &PgPool, tenant: TenantId, key: &str, run_at: DateTime<Utc>) -> bool {
    let mut tx = db::tenant_tx(pool, tenant).await.unwrap();
    let job = NewJob::new("demo.note", key, run_at)
        .tenant(tenant)
        .payload(&format!("note {key}"))
        .unwrap();
    let scheduled = jobs::schedule(&mut tx, job).await.unwrap();
    tx.commit().await.unwrap();
    scheduled
}

async fn notes_of(pool: &PgPool, tenant: TenantId) -> i64 {
    let mut tx = db::tenant_tx(pool, tenant).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_job_runs_once_when_the_clock_reaches_it_and_scheduling_it_again_is_a_no_op() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database).await;
    let clock = TestClock::new(start());
    let tenant = TenantId::new();
    assert!(schedule(&pool, tenant, "a", start() + chrono::Duration::hours(1)).await);
    assert!(
        !schedule(&pool, tenant, "a", start()).await,
        "same kind and key"
    );

    let runner = runner(&pool, &clock, false);
    assert_eq!(runner.run_due().await.unwrap(), 0, "not due yet");
    clock.advance(chrono::Duration::hours(1));
    assert_eq!(runner.run_due().await.unwrap(), 1);
    assert_eq!(
        runner.run_due().await.unwrap(),
        0,
        "done jobs do not run again"
    );
    assert_eq!(notes_of(&pool, tenant).await, 1);
    // Done jobs stay done: scheduling the same key after it ran is still a no-op.
    assert!(!schedule(&pool, tenant, "a", start()).await);
}

#[tokio::test]
async fn two_workers_racing_over_the_same_jobs_run_each_exactly_once() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database).await;
    let clock = TestClock::new(start());
    let tenant = TenantId::new();
    for i in 0..60 {
        schedule(&pool, tenant, &format!("job-{i}"), start()).await;
    }
    let (a, b) = (runner(&pool, &clock, false), runner(&pool, &clock, false));
    let (ran_a, ran_b) = tokio::join!(a.run_due(), b.run_due());
    assert_eq!(ran_a.unwrap() + ran_b.unwrap(), 60);
    assert_eq!(notes_of(&pool, tenant).await, 60);
}

#[tokio::test]
async fn a_failing_job_leaves_no_writes_is_retried_with_backoff_and_given_up_at_max_attempts() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database).await;
    let clock = TestClock::new(start());
    let tenant = TenantId::new();
    schedule(&pool, tenant, "flaky", start()).await;
    let failing = runner(&pool, &clock, true);

    assert_eq!(failing.run_due().await.unwrap(), 1);
    assert_eq!(
        notes_of(&pool, tenant).await,
        0,
        "the failed attempt rolled back"
    );
    let (attempts, error): (i32, String) =
        sqlx::query_as("SELECT attempts, last_error FROM jobs WHERE key = 'flaky'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(error.contains("provider is down"), "{error}");
    assert_eq!(failing.run_due().await.unwrap(), 0, "backing off");

    for _ in 0..2 {
        clock.advance(chrono::Duration::minutes(10));
        assert_eq!(failing.run_due().await.unwrap(), 1);
    }
    let given_up: bool =
        sqlx::query_scalar("SELECT given_up_at IS NOT NULL FROM jobs WHERE key = 'flaky'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(given_up, "given up after 3 attempts");
    clock.advance(chrono::Duration::days(1));
    assert_eq!(runner(&pool, &clock, false).run_due().await.unwrap(), 0);
}

fn request(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// The "create" under test: inserts a note and answers with its number of notes, once per key.
async fn create_note(
    pool: &PgPool,
    tenant: TenantId,
    key: &str,
    body: i64,
) -> Result<Timestamp, Error> {
    let req = request(body);
    let key = IdempotencyKey::from_request(
        "demo.CreateNote",
        Scope::Tenant(tenant),
        key,
        &RequestMeta::default(),
        &req,
    )?;
    let mut tx = db::tenant_tx(pool, tenant).await?;
    if let Some(key) = &key
        && let Claim::Replay(answer) = key.claim::<Timestamp>(&mut tx).await?
    {
        return Ok(answer);
    }
    sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, $3)")
        .bind(tenant)
        .bind(uuid::Uuid::now_v7())
        .bind(body.to_string())
        .execute(&mut *tx)
        .await?;
    // Widen the race window: a concurrent retry must wait for this transaction.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut *tx)
        .await?;
    let answer = Timestamp {
        seconds: count,
        nanos: 0,
    };
    if let Some(key) = &key {
        key.complete(&mut tx, &answer).await?;
    }
    tx.commit().await?;
    Ok(answer)
}

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_replays_the_first_answer_without_a_second_effect() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database).await;
    let tenant = TenantId::new();
    let first = create_note(&pool, tenant, "key-1", 7).await.unwrap();
    let again = create_note(&pool, tenant, "key-1", 7).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(notes_of(&pool, tenant).await, 1);
    // Without a key every call is a new effect.
    create_note(&pool, tenant, "", 7).await.unwrap();
    assert_eq!(notes_of(&pool, tenant).await, 2);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_naming_the_field() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database).await;
    let tenant = TenantId::new();
    create_note(&pool, tenant, "key-1", 7).await.unwrap();
    let err = create_note(&pool, tenant, "key-1", 8).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Validation);
    assert_eq!(err.violations()[0].field, "request_id");
    assert_eq!(notes_of(&pool, tenant).await, 1);

    let bad = create_note(&pool, tenant, "has space", 7)
        .await
        .unwrap_err();
    assert_eq!(bad.code(), ErrorCode::Validation);
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_have_one_effect_and_one_answer() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database).await;
    let tenant = TenantId::new();
    let attempts = (0..20).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move { create_note(&pool, tenant, "race", 1).await })
    });
    let answers: Vec<Timestamp> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().unwrap())
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(notes_of(&pool, tenant).await, 1);
}

#[tokio::test]
async fn keys_are_scoped_to_their_tenant_and_an_unfinished_claim_is_aborted_until_released() {
    let database = TestDatabase::create().await;
    let pool = service_pool(&database).await;
    let (a, b) = (TenantId::new(), TenantId::new());
    create_note(&pool, a, "shared-key", 1).await.unwrap();
    create_note(&pool, b, "shared-key", 1).await.unwrap();
    assert_eq!(notes_of(&pool, b).await, 1, "b's key is not a's");

    // Claim-then-work in separate transactions (a long call): a retry in between is ABORTED.
    let meta = RequestMeta {
        idempotency_key: Some("from-header".into()),
        ..RequestMeta::default()
    };
    let key = IdempotencyKey::from_request("demo.Long", Scope::Tenant(a), "", &meta, &request(1))
        .unwrap()
        .unwrap();
    let mut tx = db::tenant_tx(&pool, a).await.unwrap();
    assert!(matches!(
        key.claim::<Timestamp>(&mut tx).await.unwrap(),
        Claim::New
    ));
    tx.commit().await.unwrap();
    let mut tx = db::tenant_tx(&pool, a).await.unwrap();
    let err = key.claim::<Timestamp>(&mut tx).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Aborted);
    drop(tx);
    let mut tx = db::tenant_tx(&pool, a).await.unwrap();
    key.release(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db::tenant_tx(&pool, a).await.unwrap();
    assert!(matches!(
        key.claim::<Timestamp>(&mut tx).await.unwrap(),
        Claim::New
    ));
    key.complete(&mut tx, &request(42)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db::tenant_tx(&pool, a).await.unwrap();
    assert!(
        matches!(key.claim::<Timestamp>(&mut tx).await.unwrap(), Claim::Replay(t) if t.seconds == 42)
    );
    // Another tenant's transaction cannot see a's stored answers at all (RLS).
    let mut tx = db::tenant_tx(&pool, b).await.unwrap();
    let visible: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_keys WHERE scope LIKE 'tenant:' || $1",
    )
    .bind(a.to_string())
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(visible, 0);
}
