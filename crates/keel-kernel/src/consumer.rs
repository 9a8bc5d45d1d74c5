//! Idempotent event consumers: a durable JetStream pull consumer with explicit acks, whose handler
//! runs in a transaction that also inserts the `inbox` row for (consumer, event id). A redelivered
//! event finds that row and has no second effect. Failures are retried with backoff; after
//! `max_deliver` attempts the event moves to `dead_letters`, from where an operator can replay it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use futures::future::BoxFuture;
use prost::Message;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::config::{ConsumerConfig, NatsConfig};
use crate::db::{TenantTx, Tx};
use crate::error::{Error, ErrorCode};
use crate::ids::TenantId;
use crate::metrics::{ConsumerLabels, Metrics};
use keel_proto::events::v1::EventEnvelope;

/// A delivered event: its envelope and the subject it arrived on.
#[derive(Debug, Clone)]
pub struct Event {
    pub subject: String,
    pub envelope: EventEnvelope,
}

impl Event {
    /// The event's tenant, if it belongs to one.
    pub fn tenant(&self) -> Result<Option<TenantId>, Error> {
        if self.envelope.tenant_id.is_empty() {
            return Ok(None);
        }
        TenantId::parse_field("tenant_id", &self.envelope.tenant_id).map(Some)
    }

    /// Decode the payload as `M`, checking its type name first.
    pub fn payload<M: prost::Name + Default>(&self) -> Result<M, Error> {
        let any = self
            .envelope
            .payload
            .as_ref()
            .ok_or_else(|| Error::invalid("payload", "missing"))?;
        any.to_msg::<M>()
            .map_err(|_| Error::invalid("payload", format!("is not a {}", M::full_name())))
    }
}

/// The transaction an event (or a job, [`crate::jobs::JobTx`]) is handled in: scoped to the event's tenant when the envelope names
/// one (so the handler's repository calls get the same `&mut TenantTx` a request handler does),
/// otherwise a plain transaction for global tables.
pub enum EventTx {
    Tenant(TenantTx),
    Global(Tx),
}

impl EventTx {
    /// The tenant-scoped transaction; an event without a tenant is a bad payload (VALIDATION, so
    /// it is dead-lettered instead of retried).
    pub fn tenant(&mut self) -> Result<&mut TenantTx, Error> {
        match self {
            EventTx::Tenant(tx) => Ok(tx),
            EventTx::Global(_) => Err(Error::invalid("tenant_id", "this event needs a tenant")),
        }
    }

    /// The connection, for global tables (and the inbox).
    pub fn conn(&mut self) -> &mut PgConnection {
        match self {
            EventTx::Tenant(tx) => tx,
            EventTx::Global(tx) => tx,
        }
    }

    pub(crate) async fn commit(self) -> Result<(), Error> {
        match self {
            EventTx::Tenant(tx) => tx.commit().await,
            EventTx::Global(tx) => Ok(tx.commit().await?),
        }
    }
}

/// A consumer's domain logic. It runs inside the transaction that records the event in the inbox
/// (already scoped to the event's tenant, if any): write through `tx` and the effect happens once.
pub trait EventHandler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        tx: &'a mut EventTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// What processing one delivery came to.
#[derive(Debug)]
pub enum Outcome {
    /// The effect and the inbox row committed.
    Handled,
    /// The inbox already had this event: a redelivery, acknowledged without a second effect.
    Duplicate,
    /// The handler (or the database) failed; retried later, dead-lettered at `max_deliver`.
    Failed(Error),
    /// Not an event envelope at all: retrying cannot help.
    Undecodable(String),
}

/// How often a consumer looks for dead letters an operator asked to replay.
const REPLAY_POLL: Duration = Duration::from_secs(1);

/// An event failing transiently for longer than this is logged at ERROR on every retry, so an
/// alert can tell a slow consumer from a stuck one.
const STALE_EVENT_AGE: Duration = Duration::from_secs(300);

/// Whether retrying may help whatever the event says: the failure is in the platform's own
/// state (a database or broker away, a concurrent transaction that won, a limit), not in the
/// event. Exhaustive on purpose: a new error code must choose.
pub fn is_transient(err: &Error) -> bool {
    match err.code() {
        ErrorCode::Unavailable | ErrorCode::Aborted | ErrorCode::RateLimit => true,
        ErrorCode::Validation
        | ErrorCode::Authn
        | ErrorCode::Authz
        | ErrorCode::NotFound
        | ErrorCode::Conflict
        | ErrorCode::FailedPrecondition
        | ErrorCode::Internal => false,
    }
}

/// How long ago the event was written, from its envelope (`None` when it cannot tell).
fn event_age(message: &jetstream::Message) -> Option<Duration> {
    let envelope = EventEnvelope::decode(message.payload.clone()).ok()?;
    let occurred = envelope.occurred_at?;
    let occurred = crate::grpc::from_timestamp("occurred_at", &occurred).ok()?;
    (chrono::Utc::now() - occurred).to_std().ok()
}

/// A durable consumer: one per (consuming service, source subject filter). NATS 2.9 honours only a
/// single `filter_subject` per consumer, so a service consuming two contexts runs two consumers.
pub struct Consumer {
    name: String,
    filter_subject: String,
    pool: PgPool,
    js: jetstream::Context,
    stream: String,
    config: ConsumerConfig,
    handler: Arc<dyn EventHandler>,
    metrics: Arc<Metrics>,
}

impl Consumer {
    /// `name` is the durable name (e.g. `identity-tenancy`); `filter_subject` is a full subject
    /// pattern such as `events.tenancy.>`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        filter_subject: &str,
        pool: PgPool,
        js: jetstream::Context,
        nats: &NatsConfig,
        config: ConsumerConfig,
        handler: Arc<dyn EventHandler>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Consumer {
            name: name.to_owned(),
            filter_subject: filter_subject.to_owned(),
            pool,
            js,
            stream: nats.stream.clone(),
            config,
            handler,
            metrics,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Create (or update) the durable consumer on the stream.
    pub async fn durable(&self) -> Result<jetstream::consumer::Consumer<pull::Config>, Error> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|err| Error::unavailable("event stream unavailable").with_cause(err))?;
        stream
            .get_or_create_consumer(
                &self.name,
                pull::Config {
                    durable_name: Some(self.name.clone()),
                    filter_subject: self.filter_subject.clone(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_millis(self.config.ack_wait_ms),
                    // The kernel counts deliveries and dead-letters at `max_deliver` itself; the
                    // server never gives up on its own, so an event is never silently dropped.
                    max_deliver: -1,
                    max_ack_pending: self.config.max_ack_pending,
                    ..Default::default()
                },
            )
            .await
            .map_err(|err| Error::unavailable("cannot create consumer").with_cause(err))
    }

    /// Consume until `shutdown`, re-subscribing after broker outages.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut delay = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            match self.consume(&shutdown).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(consumer = %self.name, error = %err, "consumer interrupted, resubscribing");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn consume(&self, shutdown: &CancellationToken) -> Result<(), Error> {
        let durable = self.durable().await?;
        let mut messages = durable
            .messages()
            .await
            .map_err(|err| Error::unavailable("cannot pull messages").with_cause(err))?;
        let mut lag_tick = tokio::time::interval(Duration::from_secs(5));
        let mut replay_tick = tokio::time::interval(REPLAY_POLL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = lag_tick.tick() => self.refresh_gauges(&durable).await,
                _ = replay_tick.tick() => self.replay_requested().await,
                next = messages.next() => match next {
                    None => return Err(Error::unavailable("message stream ended")),
                    Some(Err(err)) => {
                        // Missed heartbeats while the server is away: keep the stream, it recovers.
                        tracing::debug!(consumer = %self.name, error = %err, "pull stream error");
                    }
                    Some(Ok(message)) => {
                        let outcome = self.process(&message).await;
                        self.settle(&message, outcome).await;
                    }
                }
            }
        }
    }

    /// Apply one delivery: decode, then in one transaction insert the inbox row and run the
    /// handler. Does not acknowledge; [`Consumer::settle`] does.
    pub async fn process(&self, message: &jetstream::Message) -> Outcome {
        let envelope = match EventEnvelope::decode(message.payload.clone()) {
            Ok(envelope) => envelope,
            Err(err) => return Outcome::Undecodable(err.to_string()),
        };
        let event = Event {
            subject: message.subject.to_string(),
            envelope,
        };
        let span = tracing::info_span!(
            "consume",
            consumer = %self.name,
            event_type = %event.envelope.event_type,
            event_id = %event.envelope.event_id,
            tenant_id = %event.envelope.tenant_id,
        );
        if let Some(headers) = &message.headers {
            crate::telemetry::set_parent(&span, crate::telemetry::extract_nats(headers));
        }
        // Instrumented, not entered: an entered guard held across the awaits below corrupts the
        // subscriber's span stack when the task moves threads (a tracing-subscriber panic that
        // killed the consumer task under load in the chaos suite).
        match tracing::Instrument::instrument(self.apply(&event), span).await {
            Ok(true) => Outcome::Handled,
            Ok(false) => Outcome::Duplicate,
            Err(err) => Outcome::Failed(err),
        }
    }

    /// Ok(true) if applied now, Ok(false) if the inbox says it already was.
    async fn apply(&self, event: &Event) -> Result<bool, Error> {
        let event_id = uuid::Uuid::parse_str(&event.envelope.event_id)
            .map_err(|_| Error::invalid("event_id", "must be a UUID"))?;
        let tx = self.pool.begin().await?;
        let mut tx = match event.tenant()? {
            Some(tenant) => EventTx::Tenant(TenantTx::scope(tx, tenant).await?),
            None => EventTx::Global(tx),
        };
        let inserted = sqlx::query(
            "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&self.name)
        .bind(event_id)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        self.handler.handle(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Acknowledge, retry later, or dead-letter, by outcome and delivery count.
    pub async fn settle(&self, message: &jetstream::Message, outcome: Outcome) {
        let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
        let labels = ConsumerLabels {
            consumer: self.name.clone(),
        };
        let result = match outcome {
            Outcome::Handled | Outcome::Duplicate => {
                self.metrics.consumer_handled.get_or_create(&labels).inc();
                // Double ack: the server confirms, so a lost ack is not mistaken for done.
                message.double_ack().await
            }
            // A transient failure (the database away, a serialization conflict, a rate limit)
            // says nothing about the event: retry without limit, so a security event such as a
            // member's removal is applied late rather than never. Only failures that can repeat
            // forever for this event go to the dead letters after `max_deliver`.
            Outcome::Failed(err) if is_transient(&err) => {
                let age = event_age(message);
                if age.is_some_and(|age| age >= STALE_EVENT_AGE) {
                    tracing::error!(consumer = %self.name, delivered, age_secs = age.map(|a| a.as_secs()), error = %err,
                        "event still failing transiently; effects of this event are delayed");
                } else {
                    tracing::warn!(consumer = %self.name, delivered, error = %err, "transient failure; retrying");
                }
                message
                    .ack_with(AckKind::Nak(Some(self.retry_delay(delivered))))
                    .await
            }
            Outcome::Failed(err) if delivered < self.config.max_deliver => {
                tracing::warn!(consumer = %self.name, delivered, error = %err, "event handling failed; retrying");
                message
                    .ack_with(AckKind::Nak(Some(self.retry_delay(delivered))))
                    .await
            }
            Outcome::Failed(err) => self.dead_letter(message, delivered, &err.to_string()).await,
            Outcome::Undecodable(reason) => self.dead_letter(message, delivered, &reason).await,
        };
        if let Err(err) = result {
            // The server will redeliver after ack_wait; the inbox keeps that harmless.
            tracing::warn!(consumer = %self.name, error = %err, "could not settle message");
        }
    }

    /// Run the handler on the dead letters an operator asked to replay. Each request is claimed
    /// (cleared) atomically, so one replica replays it; a crash between claim and apply drops the
    /// request, and the dead letter stays listed for the operator to ask again.
    async fn replay_requested(&self) {
        let claimed: Result<Vec<(i64, String, Vec<u8>)>, sqlx::Error> = sqlx::query_as(
            "UPDATE dead_letters SET replay_requested_at = NULL WHERE id IN ( \
                 SELECT id FROM dead_letters \
                  WHERE consumer = $1 AND replay_requested_at IS NOT NULL \
                  ORDER BY id LIMIT 16 FOR UPDATE SKIP LOCKED) \
             RETURNING id, subject, envelope",
        )
        .bind(&self.name)
        .fetch_all(&self.pool)
        .await;
        let claimed = match claimed {
            Ok(rows) => rows,
            Err(err) => {
                tracing::debug!(consumer = %self.name, error = %err, "cannot read replay requests");
                return;
            }
        };
        for (id, subject, envelope) in claimed {
            let outcome = match EventEnvelope::decode(envelope.as_slice()) {
                Ok(envelope) => match self.apply(&Event { subject, envelope }).await {
                    Ok(_) => Ok(()),
                    Err(err) => Err(err.to_string()),
                },
                Err(err) => Err(err.to_string()),
            };
            let recorded = match &outcome {
                Ok(()) => {
                    sqlx::query("UPDATE dead_letters SET replayed_at = now() WHERE id = $1")
                        .bind(id)
                        .execute(&self.pool)
                        .await
                }
                Err(reason) => {
                    sqlx::query(
                        "UPDATE dead_letters SET error = $2, deliveries = deliveries + 1, failed_at = now() \
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(reason)
                    .execute(&self.pool)
                    .await
                }
            };
            match (outcome, recorded) {
                (_, Err(err)) => {
                    tracing::error!(consumer = %self.name, id, error = %err, "cannot record a replay")
                }
                (Ok(()), Ok(_)) => {
                    tracing::info!(consumer = %self.name, id, "dead letter replayed")
                }
                (Err(reason), Ok(_)) => {
                    tracing::warn!(consumer = %self.name, id, error = %reason, "replayed dead letter failed again")
                }
            }
        }
    }

    /// The delay before delivery `delivered + 1`: `backoff_ms[delivered - 1]`, capped at the last
    /// entry, so unlimited transient retries settle at the slowest configured pace.
    fn retry_delay(&self, delivered: i64) -> Duration {
        let step = usize::try_from(delivered.max(1) - 1)
            .unwrap_or(usize::MAX)
            .min(self.config.backoff_ms.len().saturating_sub(1));
        Duration::from_millis(self.config.backoff_ms.get(step).copied().unwrap_or(1_000))
    }

    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        delivered: i64,
        reason: &str,
    ) -> Result<(), async_nats::Error> {
        let envelope = EventEnvelope::decode(message.payload.clone()).ok();
        let event_id = envelope
            .as_ref()
            .and_then(|e| uuid::Uuid::parse_str(&e.event_id).ok())
            .unwrap_or_else(uuid::Uuid::now_v7);
        let stored = sqlx::query(
            "INSERT INTO dead_letters (consumer, event_id, subject, envelope, error, deliveries) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (consumer, event_id) DO UPDATE SET error = EXCLUDED.error, \
               deliveries = dead_letters.deliveries + EXCLUDED.deliveries, failed_at = now(), replayed_at = NULL",
        )
        .bind(&self.name)
        .bind(event_id)
        .bind(message.subject.as_str())
        .bind(message.payload.to_vec())
        .bind(reason)
        .bind(delivered as i32)
        .execute(&self.pool)
        .await;
        match stored {
            Ok(_) => {
                tracing::error!(consumer = %self.name, %event_id, delivered, error = reason, "event dead-lettered");
                self.metrics
                    .dead_letters
                    .get_or_create(&ConsumerLabels {
                        consumer: self.name.clone(),
                    })
                    .inc();
                // Term: the server stops redelivering; the dead letter is now the record.
                message.ack_with(AckKind::Term).await
            }
            Err(err) => {
                // Not stored, so not terminated: let the server redeliver and try again.
                tracing::error!(consumer = %self.name, error = %err, "could not store dead letter");
                message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                    .await
            }
        }
    }

    async fn refresh_gauges(&self, durable: &jetstream::consumer::Consumer<pull::Config>) {
        let labels = ConsumerLabels {
            consumer: self.name.clone(),
        };
        if let Ok(info) = durable.get_info().await {
            self.metrics
                .consumer_lag
                .get_or_create(&labels)
                .set((info.num_pending + info.num_ack_pending as u64) as i64);
        }
        if let Ok((count,)) = sqlx::query_as::<_, (i64,)>(
            "SELECT count(*) FROM dead_letters WHERE consumer = $1 AND replayed_at IS NULL",
        )
        .bind(&self.name)
        .fetch_one(&self.pool)
        .await
        {
            self.metrics.dead_letters.get_or_create(&labels).set(count);
        }
    }
}

/// A dead-lettered event as an operator sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub event_id: uuid::Uuid,
    pub subject: String,
    pub error: String,
    pub deliveries: i32,
    pub failed_at: chrono::DateTime<chrono::Utc>,
    pub replayed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Dead letters, newest first; only those not yet replayed unless `include_replayed`.
pub async fn list_dead_letters(
    pool: &PgPool,
    include_replayed: bool,
) -> Result<Vec<DeadLetter>, Error> {
    let rows = sqlx::query_as::<_, (i64, String, uuid::Uuid, String, String, i32, chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>)>(
        "SELECT id, consumer, event_id, subject, error, deliveries, failed_at, replayed_at FROM dead_letters \
         WHERE $1 OR replayed_at IS NULL ORDER BY id DESC LIMIT 1000",
    )
    .bind(include_replayed)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, consumer, event_id, subject, error, deliveries, failed_at, replayed_at)| {
                DeadLetter {
                    id,
                    consumer,
                    event_id,
                    subject,
                    error,
                    deliveries,
                    failed_at,
                    replayed_at,
                }
            },
        )
        .collect())
}

/// Ask for a dead letter to be replayed: its consumer (any replica) runs the handler on the stored
/// envelope within a second or two, in the usual inbox transaction, and marks it replayed; if it
/// fails again, the dead letter stays with the new error. Consumers that already handled the event
/// are not involved. NOT_FOUND for an unknown id.
pub async fn replay_dead_letter(pool: &PgPool, id: i64) -> Result<(), Error> {
    let requested =
        sqlx::query("UPDATE dead_letters SET replay_requested_at = now() WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected();
    if requested == 0 {
        return Err(Error::not_found("dead letter", id));
    }
    Ok(())
}
