//! The ai-gateway's durable jobs (the kernel's `jobs`): the sweeper that releases the reservation
//! of a call that never settled (its process crashed, or it hung past the TTL). Scheduled with
//! the reservation, in its transaction, to run `reservation_ttl_secs` later; a call that settled
//! in time left nothing to release, and the job does nothing.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use keel_kernel::Error;
use keel_kernel::TenantId;
use keel_kernel::clock::SharedClock;
use keel_kernel::jobs::{Job, JobHandler, JobTx, NewJob};

use crate::domain::CompletionId;
use crate::repo;

pub const RELEASE_RESERVATION: &str = "ai.reservation.release";

/// The sweeper job of one reservation.
pub fn release_reservation(
    tenant: TenantId,
    completion: CompletionId,
    at: DateTime<Utc>,
) -> NewJob {
    NewJob::new(RELEASE_RESERVATION, completion.to_string(), at).tenant(tenant)
}

pub struct ReleaseReservation {
    pub clock: SharedClock,
}

impl ReleaseReservation {
    async fn release(&self, tx: &mut JobTx, job: &Job) -> Result<(), Error> {
        let completion = CompletionId::parse_field("key", &job.key)?;
        let tx = tx.tenant()?;
        if repo::quotas::release(tx, completion, self.clock.now()).await? {
            tracing::warn!(%completion, "released the reservation of a call that never settled");
        }
        Ok(())
    }
}

impl JobHandler for ReleaseReservation {
    fn run<'a>(&'a self, tx: &'a mut JobTx, job: &'a Job) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.release(tx, job))
    }
}
