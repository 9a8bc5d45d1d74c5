//! Marketplace's durable jobs (the kernel's worker runs each once across replicas, in the
//! transaction that marks it done, with retries):
//! - `marketplace.offer_expiry`: a PENDING offer past its `expire_time` becomes EXPIRED;
//! - `marketplace.dispute_escalation`: an OPEN dispute left without a resolution is ESCALATED;
//! - `marketplace.idempotency_purge`: CreateOrder's idempotency keys older than the retention are
//!   deleted, hourly (each run schedules the next).

use std::sync::Arc;

use chrono::{DateTime, DurationRound, Utc};
use futures::future::BoxFuture;
use keel_kernel::Error;
use keel_kernel::clock::SharedClock;
use keel_kernel::jobs::{self, Job, JobHandler, JobTx, NewJob};
use keel_kernel::outbox::Outbox;
use serde::{Deserialize, Serialize};

use crate::domain::order;
use crate::domain::{DisputeAction, DisputeId, OfferAction, OfferId, OfferState};
use crate::events::{self, Cause};
use crate::repo;
use crate::settings::Settings;

pub const OFFER_EXPIRY: &str = "marketplace.offer_expiry";
pub const DISPUTE_ESCALATION: &str = "marketplace.dispute_escalation";
pub const IDEMPOTENCY_PURGE: &str = "marketplace.idempotency_purge";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfferExpiry {
    pub offer_id: OfferId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DisputeEscalation {
    pub dispute_id: DisputeId,
}

/// What the job handlers share.
pub struct Jobs {
    outbox: Outbox,
    settings: Arc<Settings>,
    clock: SharedClock,
}

impl Jobs {
    pub fn new(outbox: Outbox, settings: Arc<Settings>, clock: SharedClock) -> Arc<Jobs> {
        Arc::new(Jobs {
            outbox,
            settings,
            clock,
        })
    }
}

/// `marketplace.offer_expiry`.
pub struct OfferExpiryJob(pub Arc<Jobs>);

impl OfferExpiryJob {
    #[tracing::instrument(skip_all, fields(job = %job.key))]
    async fn run_job(&self, tx: &mut JobTx, job: &Job) -> Result<(), Error> {
        let OfferExpiry { offer_id } = job.payload()?;
        let tx = tx.tenant()?;
        let Some(offer) = repo::offers::lock(tx, offer_id).await? else {
            return Ok(());
        };
        // Answered in time: nothing to do (the job is still marked done).
        if offer.state != OfferState::Pending {
            return Ok(());
        }
        let next = offer.answer(OfferAction::Expire, self.0.clock.now())?;
        let offer =
            repo::offers::set_state(tx, offer.id, next, None, None, self.0.clock.now()).await?;
        let cause = Cause::system(OFFER_EXPIRY, &job.key);
        self.0
            .outbox
            .enqueue(tx, events::offer_expired(&offer, &cause)?)
            .await?;
        Ok(())
    }
}

impl JobHandler for OfferExpiryJob {
    fn run<'a>(&'a self, tx: &'a mut JobTx, job: &'a Job) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.run_job(tx, job))
    }
}

/// `marketplace.dispute_escalation`.
pub struct DisputeEscalationJob(pub Arc<Jobs>);

impl DisputeEscalationJob {
    #[tracing::instrument(skip_all, fields(job = %job.key))]
    async fn run_job(&self, tx: &mut JobTx, job: &Job) -> Result<(), Error> {
        let DisputeEscalation { dispute_id } = job.payload()?;
        let tx = tx.tenant()?;
        let Some(dispute) = repo::disputes::lock(tx, dispute_id).await? else {
            return Ok(());
        };
        // Resolved in time: nothing to escalate.
        if dispute.state.apply(DisputeAction::Escalate).is_err() {
            return Ok(());
        }
        let dispute = repo::disputes::escalate(tx, dispute.id, self.0.clock.now()).await?;
        let cause = Cause::system(DISPUTE_ESCALATION, &job.key);
        self.0
            .outbox
            .enqueue(tx, events::dispute_escalated(&dispute, &cause)?)
            .await?;
        Ok(())
    }
}

impl JobHandler for DisputeEscalationJob {
    fn run<'a>(&'a self, tx: &'a mut JobTx, job: &'a Job) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.run_job(tx, job))
    }
}

/// `marketplace.idempotency_purge`: global (keys are principal-scoped, with no tenant column).
pub struct IdempotencyPurgeJob(pub Arc<Jobs>);

/// The next purge: the top of the next hour, so every replica's startup schedules the same job.
pub fn next_purge(now: DateTime<Utc>) -> NewJob {
    let hour = chrono::Duration::hours(1);
    let at = now.duration_trunc(hour).unwrap_or(now) + hour;
    NewJob::new(IDEMPOTENCY_PURGE, at.to_rfc3339(), at)
}

impl IdempotencyPurgeJob {
    #[tracing::instrument(skip_all, fields(job = %job.key))]
    async fn run_job(&self, tx: &mut JobTx, job: &Job) -> Result<(), Error> {
        let now = self.0.clock.now();
        let cutoff = now - self.0.settings.idempotency_retention();
        let purged =
            keel_kernel::idempotency::purge(tx.conn(), order::CREATE_ORDER_METHOD, cutoff).await?;
        tracing::info!(purged, "idempotency keys purged");
        jobs::schedule(tx.conn(), next_purge(now)).await?;
        Ok(())
    }
}

impl JobHandler for IdempotencyPurgeJob {
    fn run<'a>(&'a self, tx: &'a mut JobTx, job: &'a Job) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.run_job(tx, job))
    }
}
