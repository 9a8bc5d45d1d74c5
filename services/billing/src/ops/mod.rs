//! The use cases that requests, consumers and jobs share: subscribing, changing and canceling,
//! closing a period into an invoice, recording usage, settling invoices. Each runs inside the
//! caller's tenant transaction and enqueues its events there, so the change and its events
//! commit together; the caller commits.
//!
//! `grpc/`, `events::consumers` and `jobs` call these; these call `domain`, `repo` and the
//! event builders, never back into a caller.

pub mod invoicing;
pub mod subscriptions;
pub mod usage;

use chrono::{DateTime, Utc};
use keel_kernel::outbox::Outbox;

use crate::settings::Settings;

/// What a use case needs besides its transaction: the outbox, the settings and the time (from
/// the service's clock, so tests move it).
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub outbox: &'a Outbox,
    pub settings: &'a Settings,
    pub now: DateTime<Utc>,
}

/// Job kinds (kernel jobs, scheduled in the transaction of the change that needs them).
pub const PERIOD_CLOSE_JOB: &str = "billing.period_close";
pub const DUNNING_JOB: &str = "billing.dunning";
