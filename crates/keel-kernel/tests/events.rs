//! The transactional outbox and idempotent consumers, on a real Postgres and a real JetStream.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use futures::future::BoxFuture;
use keel_kernel::consumer::{self, Consumer, Event, EventHandler, EventTx, Outcome};
use keel_kernel::db;
use keel_kernel::ids::TenantId;
use keel_kernel::metrics::Metrics;
use keel_kernel::outbox::{NewEvent, Outbox, Relay};
use keel_kernel::{Error, nats};
use keel_proto::common::v1::WhoAmIResponse;
use keel_testkit::{TestDatabase, TestNats, stack};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

static NOTES: sqlx::migrate::Migrator = sqlx::migrate!("tests/migrations");

/// A service's worth of infrastructure: its own database, schema, role, broker and stream.
struct Harness {
    _database: TestDatabase,
    pool: PgPool,
    broker: TestNats,
    js: jetstream::Context,
    config: keel_kernel::config::Config,
    metrics: Arc<Metrics>,
    outbox: Outbox,
}

impl Harness {
    async fn start() -> Harness {
        let database = TestDatabase::create().await;
        let broker = TestNats::start().await;
        let config = stack::config(
            "demo",
            database.provision("demo").await,
            stack::nats_config(&broker.url()),
        );
        let pool = db::connect("demo", &config.database, Duration::from_secs(5))
            .await
            .unwrap();
        db::migrate(&pool, &NOTES).await.unwrap();
        let client = nats::connect("demo", &config.nats).await.unwrap();
        let js = jetstream::new(client);
        nats::ensure_stream(&js, &config.nats).await.unwrap();
        Harness {
            _database: database,
            pool,
            broker,
            js,
            config,
            metrics: Arc::new(Metrics::new("demo")),
            outbox: Outbox::new("demo"),
        }
    }

    fn relay(&self) -> Relay {
        Relay::new(
            self.pool.clone(),
            self.js.clone(),
            self.config.nats.clone(),
            self.config.outbox.clone(),
            self.metrics.clone(),
        )
    }

    fn consumer(&self, handler: Arc<dyn EventHandler>) -> Consumer {
        Consumer::new(
            "demo-notes",
            "events.demo.>",
            self.pool.clone(),
            self.js.clone(),
            &self.config.nats,
            self.config.consumer.clone(),
            handler,
            self.metrics.clone(),
        )
    }

    /// Write one note-created event for `tenant` in its own transaction; commit or roll back.
    async fn write_event(&self, tenant: TenantId, body: &str, commit: bool) {
        let mut tx = db::tenant_tx(&self.pool, tenant).await.unwrap();
        let event = NewEvent::new("demo.note.created", uuid::Uuid::now_v7(), &note(body))
            .unwrap()
            .tenant(tenant);
        self.outbox.enqueue(&mut tx, event).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
    }

    async fn stream_messages(&self) -> u64 {
        let mut stream = self.js.get_stream("EVENTS").await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    async fn unpublished(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Superuser view of the notes table: RLS does not apply, so this counts every tenant's rows.
    async fn notes_written(&self) -> i64 {
        let admin = self._database.admin_pool().await;
        sqlx::query_scalar("SELECT count(*) FROM demo.notes")
            .fetch_one(&admin)
            .await
            .unwrap()
    }
}

/// The test payload: any proto message with a type name will do; this one has a string field.
fn note(body: &str) -> WhoAmIResponse {
    WhoAmIResponse {
        subject: body.to_owned(),
        ..Default::default()
    }
}

/// Writes a note for every event; fails on bodies starting with "poison" until healed.
struct NoteWriter {
    healed: AtomicBool,
    calls: AtomicUsize,
}

impl NoteWriter {
    fn new() -> Arc<NoteWriter> {
        Arc::new(NoteWriter {
            healed: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        })
    }
}

impl EventHandler for NoteWriter {
    fn handle<'a>(
        &'a self,
        tx: &'a mut EventTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let tx = tx.tenant()?;
            self.calls.fetch_add(1, Ordering::SeqCst);
            let body = event.payload::<WhoAmIResponse>()?.subject;
            if body.starts_with("poison") && !self.healed.load(Ordering::SeqCst) {
                return Err(Error::invalid("body", "poisonous"));
            }
            let tenant = tx.tenant();
            sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, $3)")
                .bind(tenant)
                .bind(uuid::Uuid::now_v7())
                .bind(body)
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
    }
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Every message in the stream, as (msg id, subject).
async fn published_ids(js: &jetstream::Context) -> Vec<String> {
    let stream = js.get_stream("EVENTS").await.unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let total = stream.get_info().await.unwrap().state.messages as usize;
    let mut ids = Vec::new();
    let mut messages = consumer.messages().await.unwrap();
    while ids.len() < total {
        let message = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("message within 5s")
            .unwrap()
            .unwrap();
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn an_event_from_a_rolled_back_transaction_is_never_published() {
    let harness = Harness::start().await;
    harness
        .write_event(TenantId::new(), "rolled back", false)
        .await;
    harness.relay().drain().await.unwrap();
    assert_eq!(harness.stream_messages().await, 0);
}

#[tokio::test]
async fn a_committed_event_is_published_once_with_its_event_id_as_message_id() {
    let harness = Harness::start().await;
    harness
        .write_event(TenantId::new(), "committed", true)
        .await;
    harness.relay().drain().await.unwrap();
    harness.relay().drain().await.unwrap();
    let event_id: uuid::Uuid = sqlx::query_scalar("SELECT event_id FROM outbox")
        .fetch_one(&harness.pool)
        .await
        .unwrap();
    assert_eq!(published_ids(&harness.js).await, [event_id.to_string()]);
    assert_eq!(harness.unpublished().await, 0);
}

#[tokio::test]
async fn a_relay_restarted_between_publish_and_mark_publishes_each_event_once() {
    let harness = Harness::start().await;
    for i in 0..5 {
        harness
            .write_event(TenantId::new(), &format!("n{i}"), true)
            .await;
    }
    let relay = harness.relay();
    assert_eq!(relay.publish_batch_then_crash().await.unwrap(), 5);
    assert_eq!(
        harness.unpublished().await,
        5,
        "the crash left every row unmarked"
    );

    harness.relay().drain().await.unwrap();
    assert_eq!(harness.unpublished().await, 0);
    let ids = published_ids(&harness.js).await;
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        (ids.len(), unique.len()),
        (5, 5),
        "re-publish must be de-duplicated: {ids:?}"
    );
}

#[tokio::test]
async fn writes_succeed_while_nats_is_down_and_every_event_arrives_once_after_it_returns() {
    let mut harness = Harness::start().await;
    harness.broker.stop().await;

    let shutdown = CancellationToken::new();
    let relay = tokio::spawn(harness.relay().run(shutdown.clone()));
    for i in 0..20 {
        harness
            .write_event(TenantId::new(), &format!("offline {i}"), true)
            .await;
    }
    assert_eq!(
        harness.unpublished().await,
        20,
        "nothing can be published while NATS is down"
    );

    harness.broker.restart().await;
    eventually("the backlog drains", async || {
        harness.unpublished().await == 0
    })
    .await;
    shutdown.cancel();
    relay.await.unwrap();

    let ids = published_ids(&harness.js).await;
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((ids.len(), unique.len()), (20, 20));
}

#[tokio::test]
async fn the_relay_wakes_on_commit_and_a_consumer_applies_each_event_once() {
    let harness = Harness::start().await;
    let writer = NoteWriter::new();
    let shutdown = CancellationToken::new();
    let tasks = [
        tokio::spawn(harness.relay().run(shutdown.clone())),
        tokio::spawn(harness.consumer(writer.clone()).run(shutdown.clone())),
    ];
    let tenant = TenantId::new();
    for i in 0..10 {
        harness
            .write_event(tenant, &format!("note {i}"), true)
            .await;
    }
    eventually("all notes are written", async || {
        harness.notes_written().await == 10
    })
    .await;
    shutdown.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    // The consumer's transaction was scoped to the event's tenant: the notes are visible to it.
    let mut tx = db::tenant_tx(&harness.pool, tenant).await.unwrap();
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(visible, 10);
}

#[tokio::test]
async fn a_consumer_that_fails_after_its_effect_but_before_its_ack_has_no_second_effect() {
    let harness = Harness::start().await;
    harness.write_event(TenantId::new(), "once", true).await;
    harness.relay().drain().await.unwrap();

    let writer = NoteWriter::new();
    let consumer = harness.consumer(writer.clone());
    let durable = consumer.durable().await.unwrap();
    let mut batch = durable.fetch().max_messages(1).messages().await.unwrap();
    let first_delivery = batch.next().await.unwrap().unwrap();
    assert!(matches!(
        consumer.process(&first_delivery).await,
        Outcome::Handled
    ));
    // ...and the process dies here: no ack. The server redelivers after ack_wait.
    drop(first_delivery);

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(harness.consumer(writer.clone()).run(shutdown.clone()));
    eventually("the redelivery is acknowledged", async || {
        let info = durable.clone().info().await.unwrap().clone();
        info.num_ack_pending == 0 && info.num_pending == 0 && info.delivered.consumer_sequence >= 2
    })
    .await;
    shutdown.cancel();
    task.await.unwrap();

    assert_eq!(
        writer.calls.load(Ordering::SeqCst),
        1,
        "the handler ran once"
    );
    assert_eq!(harness.notes_written().await, 1, "the effect happened once");
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_after_max_deliveries_and_a_replay_redelivers_it() {
    let harness = Harness::start().await;
    let writer = NoteWriter::new();
    let shutdown = CancellationToken::new();
    let tasks = [
        tokio::spawn(harness.relay().run(shutdown.clone())),
        tokio::spawn(harness.consumer(writer.clone()).run(shutdown.clone())),
    ];
    harness
        .write_event(TenantId::new(), "poison pill", true)
        .await;
    harness.write_event(TenantId::new(), "healthy", true).await;

    eventually("the poison event is dead-lettered", async || {
        !consumer::list_dead_letters(&harness.pool, false)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    let dead = consumer::list_dead_letters(&harness.pool, false)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].deliveries as i64,
        harness.config.consumer.max_deliver
    );
    assert!(dead[0].error.contains("poisonous"), "{}", dead[0].error);
    assert_eq!(
        writer.calls.load(Ordering::SeqCst) as i64,
        harness.config.consumer.max_deliver + 1
    );
    eventually("the healthy event got through", async || {
        harness.notes_written().await == 1
    })
    .await;

    writer.healed.store(true, Ordering::SeqCst);
    consumer::replay_dead_letter(&harness.pool, &harness.js, dead[0].id)
        .await
        .unwrap();
    eventually("the replayed event is applied", async || {
        harness.notes_written().await == 2
    })
    .await;
    assert!(
        consumer::list_dead_letters(&harness.pool, false)
            .await
            .unwrap()
            .is_empty()
    );
    shutdown.cancel();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn replaying_an_unknown_dead_letter_is_not_found() {
    let harness = Harness::start().await;
    let err = consumer::replay_dead_letter(&harness.pool, &harness.js, 999)
        .await
        .unwrap_err();
    assert_eq!(err.code(), keel_kernel::ErrorCode::NotFound);
}

/// Fails with UNAVAILABLE (the database "away") for its first `outage` calls, then writes notes.
struct FlakyWriter {
    outage: usize,
    calls: AtomicUsize,
}

impl EventHandler for FlakyWriter {
    fn handle<'a>(
        &'a self,
        tx: &'a mut EventTx,
        _event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.outage {
                return Err(Error::unavailable("database unavailable"));
            }
            let tx = tx.tenant()?;
            let tenant = tx.tenant();
            sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, 'late')")
                .bind(tenant)
                .bind(uuid::Uuid::now_v7())
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_transient_failure_is_retried_past_max_deliver_and_never_dead_lettered() {
    let mut harness = Harness::start().await;
    harness.config.consumer.max_deliver = 3;
    harness.config.consumer.backoff_ms = vec![20, 50];
    // Twice as many transient failures as the dead-letter threshold allows for other errors.
    let writer = Arc::new(FlakyWriter {
        outage: 6,
        calls: AtomicUsize::new(0),
    });
    let shutdown = CancellationToken::new();
    let tasks = [
        tokio::spawn(harness.relay().run(shutdown.clone())),
        tokio::spawn(harness.consumer(writer.clone()).run(shutdown.clone())),
    ];
    harness
        .write_event(TenantId::new(), "member removed", true)
        .await;

    eventually("the event is applied after the outage", async || {
        harness.notes_written().await == 1
    })
    .await;
    assert_eq!(writer.calls.load(Ordering::SeqCst), 7);
    assert!(
        consumer::list_dead_letters(&harness.pool, true)
            .await
            .unwrap()
            .is_empty(),
        "a transient failure must not dead-letter"
    );
    shutdown.cancel();
    for task in tasks {
        task.await.unwrap();
    }
}

#[test]
fn only_platform_state_failures_are_transient() {
    use keel_kernel::ErrorCode;
    for code in ErrorCode::ALL {
        let transient = consumer::is_transient(&Error::new(code, "x"));
        let expected = matches!(
            code,
            ErrorCode::Unavailable | ErrorCode::Aborted | ErrorCode::RateLimit
        );
        assert_eq!(transient, expected, "{code}");
    }
}
