//! The ai-gateway's durable jobs (the kernel's `jobs`): the sweeper that releases reservations of
//! calls that never settled (their process crashed, or they hung past the TTL).
//!
//! One job per tenant and TTL-long time bucket, not one per call: a reservation schedules the
//! sweep of its bucket in its own transaction (a no-op when that sweep is already scheduled), and
//! the sweep runs once every reservation of the bucket is older than the TTL, releasing all of
//! the tenant's reservations older than that.

use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use keel_kernel::clock::SharedClock;
use keel_kernel::jobs::{Job, JobHandler, JobTx, NewJob};
use keel_kernel::{Error, TenantId};

use crate::repo;

pub const SWEEP_RESERVATIONS: &str = "ai.reservations.sweep";

/// The TTL-long time bucket `now` is in.
pub fn bucket(now: DateTime<Utc>, ttl: Duration) -> i64 {
    now.timestamp().div_euclid(ttl.num_seconds().max(1))
}

/// The sweep covering a reservation made at `now`.
pub fn sweep_reservations(tenant: TenantId, now: DateTime<Utc>, ttl: Duration) -> NewJob {
    let width = ttl.num_seconds().max(1);
    let bucket = bucket(now, ttl);
    // The bucket's last reservation is older than the TTL at the start of the bucket after next.
    let run_at = DateTime::from_timestamp((bucket + 2) * width, 0).unwrap_or(now + ttl + ttl);
    NewJob::new(SWEEP_RESERVATIONS, format!("{tenant}:{bucket}"), run_at).tenant(tenant)
}

pub struct SweepReservations {
    pub clock: SharedClock,
    pub ttl: Duration,
}

impl SweepReservations {
    async fn sweep(&self, tx: &mut JobTx) -> Result<(), Error> {
        let tx = tx.tenant()?;
        repo::quotas::release_expired(tx, self.clock.now() - self.ttl).await?;
        Ok(())
    }
}

impl JobHandler for SweepReservations {
    fn run<'a>(&'a self, tx: &'a mut JobTx, _job: &'a Job) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.sweep(tx))
    }
}
