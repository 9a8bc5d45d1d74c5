//! Durable jobs: work that must happen later (a billing period closes, a grace period ends, a
//! reservation expires), exactly once across replicas, surviving restarts.
//!
//! A job is scheduled with [`schedule`] in the transaction of the change that needs it, so it
//! exists if and only if that change committed; `(kind, key)` is unique, so scheduling twice is
//! harmless. A worker in every replica claims due jobs with `FOR UPDATE SKIP LOCKED` (a claimed
//! job is invisible to the other workers) and runs the handler in the same transaction that marks
//! the job done: the job's effect and its completion commit together or not at all. A failure
//! rolls both back and the job is retried with backoff, then given up after
//! `jobs.max_attempts` (kept with its last error).
//!
//! "Due" is judged by the service's [`Clock`](crate::clock::Clock), so a test moves its clock and
//! calls [`JobRunner::run_due`] instead of sleeping.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::JobsConfig;
use crate::consumer::EventTx;
use crate::db::TenantTx;
use crate::error::Error;
use crate::ids::TenantId;

/// The transaction a job runs in: scoped to the job's tenant when it has one (`tx.tenant()?`),
/// a plain transaction otherwise (`tx.conn()`). The same type an event handler gets, so a repo
/// function serves requests, events and jobs alike.
pub type JobTx = EventTx;

/// A job to schedule.
#[derive(Debug, Clone)]
pub struct NewJob {
    kind: &'static str,
    key: String,
    tenant: Option<TenantId>,
    payload: serde_json::Value,
    run_at: DateTime<Utc>,
}

impl NewJob {
    /// `kind` names the handler (`billing.period_close`); `key` identifies this job among the
    /// kind's (`close:<subscription>:<period end>`): a second schedule with it is a no-op.
    pub fn new(kind: &'static str, key: impl Into<String>, run_at: DateTime<Utc>) -> NewJob {
        NewJob {
            kind,
            key: key.into(),
            tenant: None,
            payload: serde_json::Value::Null,
            run_at,
        }
    }

    /// Run the job in a transaction scoped to `tenant`.
    pub fn tenant(mut self, tenant: TenantId) -> NewJob {
        self.tenant = Some(tenant);
        self
    }

    pub fn payload<T: Serialize>(mut self, payload: &T) -> Result<NewJob, Error> {
        self.payload = serde_json::to_value(payload).map_err(Error::internal)?;
        Ok(self)
    }
}

/// Schedule `job` in the caller's transaction. False when a job with its kind and key exists
/// already (done or not): scheduling is idempotent.
pub async fn schedule(conn: &mut PgConnection, job: NewJob) -> Result<bool, Error> {
    let inserted = sqlx::query(
        "INSERT INTO jobs (kind, key, tenant_id, payload, run_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (kind, key) DO NOTHING",
    )
    .bind(job.kind)
    .bind(&job.key)
    .bind(job.tenant.map(|t| t.as_uuid()))
    .bind(&job.payload)
    .bind(job.run_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub key: String,
    pub tenant: Option<TenantId>,
    pub run_at: DateTime<Utc>,
    /// Failed attempts before this one.
    pub attempts: i32,
    payload: serde_json::Value,
}

impl Job {
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(self.payload.clone())
            .map_err(|err| Error::invalid("payload", format!("job payload does not decode: {err}")))
    }
}

/// A kind of job's work. It runs inside the transaction that marks the job done.
pub trait JobHandler: Send + Sync + 'static {
    fn run<'a>(&'a self, tx: &'a mut JobTx, job: &'a Job) -> BoxFuture<'a, Result<(), Error>>;
}

/// Claims and runs due jobs of the kinds registered with it. Clones share the registrations.
#[derive(Clone)]
pub struct JobRunner {
    pool: PgPool,
    clock: SharedClock,
    config: JobsConfig,
    handlers: Arc<HashMap<&'static str, Arc<dyn JobHandler>>>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    kind: String,
    key: String,
    tenant_id: Option<uuid::Uuid>,
    payload: serde_json::Value,
    run_at: DateTime<Utc>,
    attempts: i32,
}

/// How long [`JobRunner::run_due`] waits for due jobs that other workers are running.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(30);

/// The longest a failing job waits before its next attempt.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);

impl JobRunner {
    pub fn new(
        pool: PgPool,
        clock: SharedClock,
        config: JobsConfig,
        handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
    ) -> JobRunner {
        JobRunner {
            pool,
            clock,
            config,
            handlers: Arc::new(handlers),
        }
    }

    /// Run jobs due now until none is left, waiting for due jobs another worker is running (so
    /// a test that moved its clock sees every due job's effect); how many ran here. Workers of
    /// other replicas running at the same time never get the same job.
    pub async fn run_due(&self) -> Result<usize, Error> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHERS;
        let mut ran = 0;
        loop {
            ran += self.drain().await?;
            if !self.due_elsewhere().await? || tokio::time::Instant::now() >= deadline {
                return Ok(ran);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Run jobs due now until none can be claimed (the worker's loop: it does not wait for
    /// other workers' jobs).
    async fn drain(&self) -> Result<usize, Error> {
        let mut ran = 0;
        while self.run_one().await? {
            ran += 1;
        }
        Ok(ran)
    }

    /// Whether a due job of ours is still open: one another worker has claimed and not finished.
    async fn due_elsewhere(&self) -> Result<bool, Error> {
        if self.handlers.is_empty() {
            return Ok(false);
        }
        let kinds: Vec<&str> = self.handlers.keys().copied().collect();
        let open: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE done_at IS NULL AND given_up_at IS NULL \
                AND run_at <= $1 AND kind = ANY($2))",
        )
        .bind(self.clock.now())
        .bind(&kinds)
        .fetch_one(&self.pool)
        .await?;
        Ok(open)
    }

    /// Claim one due job and run it. False when there was none.
    async fn run_one(&self) -> Result<bool, Error> {
        if self.handlers.is_empty() {
            return Ok(false);
        }
        let kinds: Vec<&str> = self.handlers.keys().copied().collect();
        let mut tx = self.pool.begin().await?;
        let row: Option<JobRow> = sqlx::query_as(
            "SELECT id, kind, key, tenant_id, payload, run_at, attempts FROM jobs \
              WHERE done_at IS NULL AND given_up_at IS NULL AND run_at <= $1 AND kind = ANY($2) \
              ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.clock.now())
        .bind(&kinds)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let job = Job {
            id: row.id,
            kind: row.kind,
            key: row.key,
            tenant: row.tenant_id.map(TenantId::from_uuid),
            run_at: row.run_at,
            attempts: row.attempts,
            payload: row.payload,
        };
        let Some(handler) = self.handlers.get(job.kind.as_str()).cloned() else {
            return Ok(false);
        };
        // Instrumented, not entered: an entered span held across awaits is exited on whatever
        // thread the future resumes on, which corrupts the subscriber's span stack.
        let span = tracing::info_span!("job", kind = %job.kind, key = %job.key, attempt = job.attempts + 1);
        let run = async {
            let mut tx = match job.tenant {
                Some(tenant) => JobTx::Tenant(TenantTx::scope(tx, tenant).await?),
                None => JobTx::Global(tx),
            };
            match handler.run(&mut tx, &job).await {
                Ok(()) => finish(tx, job.id).await,
                Err(err) => {
                    // Let go of the job's row lock (and undo the handler's writes) before
                    // recording the failure on another connection, which would otherwise wait on
                    // that lock.
                    drop(tx);
                    Err(err)
                }
            }
        };
        let outcome = tracing::Instrument::instrument(run, span.clone()).await;
        if let Err(err) = outcome {
            tracing::Instrument::instrument(self.record_failure(&job, &err), span).await?;
        }
        Ok(true)
    }

    async fn record_failure(&self, job: &Job, err: &Error) -> Result<(), Error> {
        let attempts = job.attempts + 1;
        let give_up = attempts >= self.config.max_attempts;
        if give_up {
            tracing::error!(error = %err, attempts, "job failed for the last time; given up");
        } else {
            tracing::warn!(error = %err, attempts, "job failed; retrying later");
        }
        let delay = retry_delay(attempts);
        sqlx::query(
            "UPDATE jobs SET attempts = $2, last_error = $3, run_at = $4, \
                    given_up_at = CASE WHEN $5 THEN now() END \
              WHERE id = $1",
        )
        .bind(job.id)
        .bind(attempts)
        .bind(err.to_string())
        .bind(self.clock.now() + delay)
        .bind(give_up)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Poll for due jobs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.handlers.is_empty() {
            return;
        }
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        loop {
            if let Err(err) = self.drain().await {
                tracing::warn!(error = %err, "job worker cannot reach the database; retrying");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}

/// Mark the job done in its own transaction and commit: its effect and its completion together.
async fn finish(mut tx: JobTx, id: i64) -> Result<(), Error> {
    sqlx::query("UPDATE jobs SET done_at = now() WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    tx.commit().await
}

/// Exponential backoff from one second, capped.
fn retry_delay(attempts: i32) -> chrono::Duration {
    let exponent = attempts.clamp(1, 16) as u32 - 1;
    let delay = Duration::from_secs(1u64 << exponent).min(MAX_RETRY_DELAY);
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_ten_minutes() {
        assert_eq!(retry_delay(1).num_seconds(), 1);
        assert_eq!(retry_delay(2).num_seconds(), 2);
        assert_eq!(retry_delay(5).num_seconds(), 16);
        assert_eq!(retry_delay(30).num_seconds(), 600);
    }
}
