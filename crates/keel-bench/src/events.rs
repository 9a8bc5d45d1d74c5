//! Outbox relay throughput and commit-to-consumer-effect latency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::future::BoxFuture;
use keel_kernel::consumer::{Consumer, Event, EventHandler, EventTx};
use keel_kernel::db;
use keel_kernel::metrics::Metrics;
use keel_kernel::outbox::{NewEvent, Outbox, Relay};
use keel_kernel::{Error, TenantId, nats};
use keel_proto::common::v1::WhoAmIResponse;
use keel_testkit::{TestDatabase, TestNats, stack};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::report::{Report, micros, millis, quantile};

static EFFECTS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

struct Bench {
    _database: TestDatabase,
    _broker: TestNats,
    pool: sqlx::PgPool,
    js: jetstream::Context,
    config: keel_kernel::config::Config,
    metrics: Arc<Metrics>,
}

async fn setup() -> anyhow::Result<Bench> {
    let database = TestDatabase::create().await;
    let broker = TestNats::start().await;
    let mut config = stack::config(
        "bench",
        database.provision("bench").await,
        stack::nats_config(&broker.url()),
    );
    config.database.max_connections = 16;
    let pool = db::connect("bench", &config.database, Duration::from_secs(5)).await?;
    db::migrate(&pool, &EFFECTS).await?;
    let js = jetstream::new(nats::connect("bench", &config.nats).await?);
    nats::ensure_stream(&js, &config.nats).await?;
    Ok(Bench {
        _database: database,
        _broker: broker,
        pool,
        js,
        config,
        metrics: Arc::new(Metrics::new("bench")),
    })
}

fn payload() -> WhoAmIResponse {
    WhoAmIResponse {
        subject: "bench".into(),
        ..Default::default()
    }
}

pub async fn relay_throughput(report: &mut Report, events: usize) -> anyhow::Result<()> {
    let bench = setup().await?;
    let outbox = Outbox::new("bench");
    let tenant = TenantId::new();
    // Enqueue untimed, 500 per transaction: the figure is the relay's, not the writers'.
    for chunk in 0..events.div_ceil(500) {
        let mut tx = db::tenant_tx(&bench.pool, tenant).await?;
        for i in 0..500.min(events - chunk * 500) {
            let event = NewEvent::new("bench.item.created", i, &payload())?.tenant(tenant);
            outbox.enqueue(&mut tx, event).await?;
        }
        tx.commit().await?;
    }
    let relay = Relay::new(
        bench.pool.clone(),
        bench.js.clone(),
        bench.config.nats.clone(),
        bench.config.outbox.clone(),
        bench.metrics.clone(),
    );
    let started = Instant::now();
    relay.drain().await?;
    let elapsed = started.elapsed();
    let mut stream = bench.js.get_stream(&bench.config.nats.stream).await?;
    let stored = stream.info().await?.state.messages;
    anyhow::ensure!(
        stored as usize == events,
        "expected {events} messages in the stream, found {stored}"
    );
    report.section(
        "Outbox relay throughput",
        &format!(
            "{events} committed outbox rows drained by one relay (batches of {}, publishes pipelined, \
             acks awaited in order, rows marked per batch) into a file-backed JetStream stream.",
            bench.config.outbox.batch_size
        ),
        vec![
            ("events relayed".into(), events.to_string()),
            ("elapsed".into(), millis(elapsed)),
            ("throughput".into(), format!("{:.0} events/s", events as f64 / elapsed.as_secs_f64())),
        ],
    );
    Ok(())
}

/// Records when each event's effect was applied and tells the benchmark loop.
struct Recorder {
    applied: mpsc::UnboundedSender<(String, Instant)>,
}

impl EventHandler for Recorder {
    fn handle<'a>(
        &'a self,
        tx: &'a mut EventTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let tx = tx.tenant()?;
            let tenant = tx.tenant();
            let event_id =
                uuid::Uuid::parse_str(&event.envelope.event_id).map_err(Error::internal)?;
            sqlx::query("INSERT INTO effects (tenant_id, event_id) VALUES ($1, $2)")
                .bind(tenant)
                .bind(event_id)
                .execute(&mut **tx)
                .await?;
            let _ = self
                .applied
                .send((event.envelope.event_id.clone(), Instant::now()));
            Ok(())
        })
    }
}

pub async fn commit_to_effect_latency(report: &mut Report, events: usize) -> anyhow::Result<()> {
    let bench = setup().await?;
    let outbox = Outbox::new("bench");
    let (applied_tx, mut applied_rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let relay = Relay::new(
        bench.pool.clone(),
        bench.js.clone(),
        bench.config.nats.clone(),
        bench.config.outbox.clone(),
        bench.metrics.clone(),
    );
    let consumer = Consumer::new(
        "bench-effects",
        "events.bench.>",
        bench.pool.clone(),
        bench.js.clone(),
        &bench.config.nats,
        bench.config.consumer.clone(),
        Arc::new(Recorder {
            applied: applied_tx,
        }),
        bench.metrics.clone(),
    );
    let tasks = [
        tokio::spawn(relay.run(shutdown.clone())),
        tokio::spawn(consumer.run(shutdown.clone())),
    ];
    let tenant = TenantId::new();
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut latencies = Vec::with_capacity(events);
    // Warm up: the relay's leadership, the listener and the pull consumer are set up lazily.
    for round in 0..(events + 20) {
        let mut tx = db::tenant_tx(&bench.pool, tenant).await?;
        let event_id = outbox
            .enqueue(
                &mut tx,
                NewEvent::new("bench.item.created", round, &payload())?.tenant(tenant),
            )
            .await?;
        tx.commit().await?;
        let commit_time = Instant::now();
        committed
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(event_id.to_string(), commit_time);
        // One event in flight at a time: this measures latency, not queueing.
        let (applied_id, applied_at) =
            tokio::time::timeout(Duration::from_secs(10), applied_rx.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("consumer stopped"))?;
        anyhow::ensure!(
            applied_id == event_id.to_string(),
            "events applied out of order"
        );
        if round >= 20 {
            latencies.push(applied_at.duration_since(commit_time));
        }
    }
    shutdown.cancel();
    for task in tasks {
        task.await?;
    }
    latencies.sort();
    report.section(
        "Commit-to-consumer-effect latency",
        &format!(
            "One event at a time: the writer commits its outbox row; NOTIFY wakes the relay, which \
             publishes to JetStream; a durable pull consumer applies the effect and its inbox row in \
             one transaction. Measured from the writer's commit to the handler's effect, over {events} \
             events after 20 warm-up events."
        ),
        vec![
            ("p50".into(), micros(quantile(&latencies, 0.50))),
            ("p90".into(), micros(quantile(&latencies, 0.90))),
            ("p99".into(), micros(quantile(&latencies, 0.99))),
            ("max".into(), micros(quantile(&latencies, 1.0))),
        ],
    );
    Ok(())
}
