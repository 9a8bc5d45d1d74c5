//! Billing's durable jobs (the kernel's job worker runs them once across replicas, in the
//! transaction that marks them done, with retries):
//! - `billing.period_close`: invoice a period, renew (or end) the subscription, schedule the
//!   next close;
//! - `billing.dunning`: after the grace period, an unpaid invoice is UNCOLLECTIBLE and its
//!   PAST_DUE subscription canceled.

use std::sync::Arc;

use futures::future::BoxFuture;
use keel_kernel::Error;
use keel_kernel::clock::SharedClock;
use keel_kernel::jobs::{Job, JobHandler, JobTx};
use keel_kernel::outbox::Outbox;

use crate::events::Cause;
use crate::ops::invoicing::{self, Dunning};
use crate::ops::subscriptions::PeriodClose;
use crate::ops::{DUNNING_JOB, Env, PERIOD_CLOSE_JOB};
use crate::settings::Settings;

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

    fn env(&self) -> Env<'_> {
        Env {
            outbox: &self.outbox,
            settings: &self.settings,
            now: self.clock.now(),
        }
    }
}

/// `billing.period_close`.
pub struct PeriodCloseJob(pub Arc<Jobs>);

impl PeriodCloseJob {
    pub const KIND: &'static str = PERIOD_CLOSE_JOB;

    #[tracing::instrument(skip_all, fields(job = %job.key))]
    async fn run_job(&self, tx: &mut JobTx, job: &Job) -> Result<(), Error> {
        let close: PeriodClose = job.payload()?;
        let cause = Cause::system("billing.period_close", &job.key);
        invoicing::close_period(tx.tenant()?, self.0.env(), &close, &cause).await?;
        Ok(())
    }
}

impl JobHandler for PeriodCloseJob {
    fn run<'a>(&'a self, tx: &'a mut JobTx, job: &'a Job) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.run_job(tx, job))
    }
}

/// `billing.dunning`.
pub struct DunningJob(pub Arc<Jobs>);

impl DunningJob {
    pub const KIND: &'static str = DUNNING_JOB;

    #[tracing::instrument(skip_all, fields(job = %job.key))]
    async fn run_job(&self, tx: &mut JobTx, job: &Job) -> Result<(), Error> {
        let dunning: Dunning = job.payload()?;
        let cause = Cause::system("billing.dunning", &job.key);
        invoicing::give_up(tx.tenant()?, self.0.env(), &dunning, &cause).await
    }
}

impl JobHandler for DunningJob {
    fn run<'a>(&'a self, tx: &'a mut JobTx, job: &'a Job) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.run_job(tx, job))
    }
}
