//! The transactional outbox: an event is a row written in the same transaction as the change that
//! caused it, so it is published if and only if the change commits. The [`Relay`] publishes rows to
//! JetStream with `Nats-Msg-Id` = event id (a re-publish is de-duplicated by the stream), waits for
//! each ack, and only then marks the row published.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture};
use prost::Message;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::config::{NatsConfig, OutboxConfig};
use crate::db::Tx;
use crate::error::Error;
use crate::ids::{EventId, TenantId};
use crate::metrics::Metrics;
use keel_proto::events::v1::{Actor, EventEnvelope};

/// An event about to be written. `event_type` is `<context>.<aggregate>.<verb>`, which is also the
/// NATS subject under the stream's prefix.
#[derive(Debug, Clone)]
pub struct NewEvent {
    event_type: String,
    tenant_id: Option<TenantId>,
    aggregate_id: String,
    aggregate_version: i64,
    actor: Option<Actor>,
    correlation_id: String,
    causation_id: String,
    payload: prost_types::Any,
    /// A natural id when the event has one (an AI call's completion id), else a fresh one.
    event_id: Option<EventId>,
}

impl NewEvent {
    /// An event of `event_type` about aggregate `aggregate_id`, carrying `payload`.
    pub fn new<M: prost::Name>(
        event_type: &str,
        aggregate_id: impl ToString,
        payload: &M,
    ) -> Result<Self, Error> {
        let tokens: Vec<&str> = event_type.split('.').collect();
        let valid_token =
            |t: &&str| !t.is_empty() && t.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        if tokens.len() != 3 || !tokens.iter().all(valid_token) {
            return Err(Error::internal(anyhow::anyhow!(
                "event type `{event_type}` is not `<context>.<aggregate>.<verb>`"
            )));
        }
        let payload = prost_types::Any::from_msg(payload).map_err(Error::internal)?;
        Ok(NewEvent {
            event_type: event_type.to_owned(),
            tenant_id: None,
            aggregate_id: aggregate_id.to_string(),
            aggregate_version: 0,
            actor: None,
            correlation_id: String::new(),
            causation_id: String::new(),
            payload,
            event_id: None,
        })
    }

    /// Use `id` as the envelope's event id (and JetStream message id) instead of a fresh one, for
    /// an event that is the one record of something with an id of its own: consumers that
    /// deduplicate on the event id then count that thing once, whoever publishes it how often.
    pub fn id(mut self, id: EventId) -> Self {
        self.event_id = Some(id);
        self
    }

    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant_id = Some(tenant);
        self
    }

    /// The aggregate's version after this change; consumers use it to drop stale events.
    pub fn version(mut self, version: i64) -> Self {
        self.aggregate_version = version;
        self
    }

    /// Who caused the change (see [`crate::actor::Actor`]).
    pub fn actor(mut self, actor: &crate::actor::Actor) -> Self {
        self.actor = Some(actor.to_proto());
        self
    }

    /// The request (or upstream event) this change belongs to; the causation is the direct cause.
    pub fn correlation(
        mut self,
        correlation_id: impl ToString,
        causation_id: impl ToString,
    ) -> Self {
        self.correlation_id = correlation_id.to_string();
        self.causation_id = causation_id.to_string();
        self
    }

    pub fn event_type(&self) -> &str {
        &self.event_type
    }
}

/// A service's handle for writing events; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    source: Arc<str>,
}

impl Outbox {
    /// `source` is the service name, recorded in every envelope.
    pub fn new(source: &str) -> Self {
        Outbox {
            source: source.into(),
        }
    }

    /// Write `event` in the caller's transaction (a `&mut Tx` or `&mut TenantTx` both coerce to
    /// the connection) and wake the relay when it commits. Nothing is sent now: if the
    /// transaction rolls back, the event never existed.
    #[tracing::instrument(skip_all, fields(event_type = %event.event_type))]
    pub async fn enqueue(&self, tx: &mut PgConnection, event: NewEvent) -> Result<EventId, Error> {
        let event_id = event.event_id.unwrap_or_else(EventId::new);
        let trace_context: HashMap<String, String> = crate::telemetry::current_context_map();
        let now = chrono::Utc::now();
        let envelope = EventEnvelope {
            event_id: event_id.to_string(),
            event_type: event.event_type.clone(),
            tenant_id: event.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
            aggregate_type: event
                .event_type
                .split('.')
                .nth(1)
                .unwrap_or_default()
                .to_owned(),
            aggregate_id: event.aggregate_id,
            aggregate_version: event.aggregate_version,
            occurred_at: Some(crate::grpc::timestamp(now)),
            actor: event.actor,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            trace_context: trace_context.clone(),
            payload: Some(event.payload),
            source: self.source.to_string(),
        };
        sqlx::query(
            "INSERT INTO outbox (event_id, event_type, tenant_id, envelope, trace_context) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(event_id)
        .bind(&event.event_type)
        .bind(event.tenant_id)
        .bind(envelope.encode_to_vec())
        .bind(sqlx::types::Json(&trace_context))
        .execute(&mut *tx)
        .await?;
        // Delivered at commit, dropped on rollback; Postgres folds repeats within a transaction.
        sqlx::query("SELECT pg_notify('outbox_' || current_schema(), '')")
            .execute(&mut *tx)
            .await?;
        Ok(event_id)
    }
}

/// Publishes outbox rows to JetStream. One relay per service is active at a time (a Postgres
/// advisory lock), so events of one aggregate leave in the order they were written; standbys wait
/// for the lock.
pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    nats: NatsConfig,
    config: OutboxConfig,
    metrics: Arc<Metrics>,
}

struct PendingRow {
    id: i64,
    event_id: uuid::Uuid,
    event_type: String,
    envelope: Vec<u8>,
    trace_context: sqlx::types::Json<HashMap<String, String>>,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        nats: NatsConfig,
        config: OutboxConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Relay {
            pool,
            js,
            nats,
            config,
            metrics,
        }
    }

    /// Run until `shutdown`: take leadership, then drain on every NOTIFY or poll tick.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.lead(&shutdown).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "outbox relay interrupted, restarting");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_millis(self.config.max_backoff_ms));
                }
            }
        }
    }

    /// Hold the relay lock on a dedicated connection and relay until shutdown or a lost connection.
    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), Error> {
        let mut lock_conn = self.pool.acquire().await?.detach();
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        loop {
            let (locked,): (bool,) =
                sqlx::query_as("SELECT pg_try_advisory_lock(hashtextextended('keel.outbox.' || current_schema(), 0))")
                    .fetch_one(&mut lock_conn)
                    .await?;
            if locked {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(poll) => {}
            }
        }
        tracing::info!("outbox relay is the active relay for this service");

        let mut listener = PgListener::connect_with(&self.pool).await?;
        let (channel,): (String,) = sqlx::query_as("SELECT 'outbox_' || current_schema()")
            .fetch_one(&self.pool)
            .await?;
        listener.listen(&channel).await?;
        // The stream may not exist yet if NATS was down when the service started.
        let _ = crate::nats::ensure_stream(&self.js, &self.nats).await;

        let retention = Duration::from_secs(self.config.retention_hours * 3600);
        let mut next_cleanup = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.drain().await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(err) => {
                    tracing::warn!(error = %err, "publishing outbox events failed; will retry");
                    let _ = crate::nats::ensure_stream(&self.js, &self.nats).await;
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_millis(self.config.max_backoff_ms));
                    continue;
                }
            }
            if tokio::time::Instant::now() >= next_cleanup {
                self.delete_published_before(retention).await?;
                next_cleanup = tokio::time::Instant::now() + Duration::from_secs(600);
            }
            // Losing the lock connection means another relay may take over: stop leading.
            sqlx::query("SELECT 1").execute(&mut lock_conn).await?;
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                // PgListener reconnects by itself; notifications sent meanwhile are lost, hence the poll.
                notification = listener.recv() => { notification?; }
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Relay batches until one comes back short (the outbox is drained) or a publish fails.
    pub async fn drain(&self) -> Result<(), Error> {
        let drained = loop {
            match self.relay_batch().await {
                Ok(relayed) if relayed < self.config.batch_size as usize => break Ok(()),
                Ok(_) => continue,
                Err(err) => break Err(err),
            }
        };
        // Once per drain, not per batch: the gauge needs no finer grain than the wake-ups.
        self.refresh_backlog().await;
        drained
    }

    /// Claim one batch, publish it in order, mark the acknowledged prefix, commit. Returns how many
    /// rows were marked; a publish failure marks what was acknowledged before it and returns the error.
    pub async fn relay_batch(&self) -> Result<usize, Error> {
        let mut tx = self.pool.begin().await?;
        let (acked, failure) = self.publish_claimed(&mut tx).await?;
        if !acked.is_empty() {
            sqlx::query(
                "UPDATE outbox SET published_at = now(), last_error = NULL WHERE id = ANY($1)",
            )
            .bind(&acked)
            .execute(&mut *tx)
            .await?;
        }
        if let Some((id, err)) = &failure {
            sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
                .bind(id)
                .bind(err.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.metrics.outbox_published.inc_by(acked.len() as u64);
        match failure {
            Some((_, err)) => Err(err),
            None => Ok(acked.len()),
        }
    }

    /// Publish one batch without marking it, then roll back: what a relay that dies between the
    /// publish and the mark leaves behind. Tests use it to show the next relay's re-publish is
    /// de-duplicated by JetStream.
    #[doc(hidden)]
    pub async fn publish_batch_then_crash(&self) -> Result<usize, Error> {
        let mut tx = self.pool.begin().await?;
        let (acked, failure) = self.publish_claimed(&mut tx).await?;
        tx.rollback().await?;
        match failure {
            Some((_, err)) => Err(err),
            None => Ok(acked.len()),
        }
    }

    /// Lock a batch of unpublished rows, send them all (pipelined), then await the acks in order.
    /// Returns the ids acknowledged before the first failure, and that failure.
    async fn publish_claimed(
        &self,
        tx: &mut Tx,
    ) -> Result<(Vec<i64>, Option<(i64, Error)>), Error> {
        let rows: Vec<PendingRow> = sqlx::query_as::<
            _,
            (
                i64,
                uuid::Uuid,
                String,
                Vec<u8>,
                sqlx::types::Json<HashMap<String, String>>,
            ),
        >(
            "SELECT id, event_id, event_type, envelope, trace_context FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.config.batch_size)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(
            |(id, event_id, event_type, envelope, trace_context)| PendingRow {
                id,
                event_id,
                event_type,
                envelope,
                trace_context,
            },
        )
        .collect();

        let mut in_flight: Vec<(i64, PublishAckFuture)> = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in rows {
            let mut headers = async_nats::HeaderMap::new();
            for (key, value) in row.trace_context.0.iter() {
                headers.insert(key.as_str(), value.as_str());
            }
            // Headers first: `headers()` replaces the whole map, so `message_id` must come after.
            let message = jetstream::message::PublishMessage::build()
                .headers(headers)
                .payload(row.envelope.into())
                .message_id(row.event_id.to_string());
            match self
                .js
                .send_publish(
                    crate::nats::subject_for(&self.nats, &row.event_type),
                    message,
                )
                .await
            {
                Ok(ack) => in_flight.push((row.id, ack)),
                Err(err) => {
                    failure = Some((row.id, Error::unavailable("publish failed").with_cause(err)));
                    break;
                }
            }
        }
        let mut acked = Vec::with_capacity(in_flight.len());
        for (id, ack) in in_flight {
            match ack.await {
                Ok(_) => acked.push(id),
                Err(err) => {
                    // Later rows may have been stored too; the next attempt re-publishes them and
                    // the stream drops the duplicates by message id.
                    failure = Some((
                        id,
                        Error::unavailable("publish not acknowledged").with_cause(err),
                    ));
                    break;
                }
            }
        }
        Ok((acked, failure))
    }

    async fn refresh_backlog(&self) {
        let backlog: Result<(i64, f64), _> = sqlx::query_as(
            "SELECT count(*), \
                    COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 \
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await;
        if let Ok((backlog, oldest_age_secs)) = backlog {
            self.metrics.outbox_backlog.set(backlog);
            self.metrics.outbox_oldest_age.set(oldest_age_secs);
        }
    }

    /// Published rows are kept for `retention` so they can be re-published if the broker loses
    /// acknowledged messages (a single 2.9 node flushes to disk only about once a minute).
    async fn delete_published_before(&self, retention: Duration) -> Result<u64, Error> {
        let result = sqlx::query(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
        )
        .bind(retention.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }
}
