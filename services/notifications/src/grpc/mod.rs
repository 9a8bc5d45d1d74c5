//! The gRPC surface: one proto service (`NotificationService`), one handler type
//! (`Notifications`), its use cases split by concern (`inbox.rs`, `preferences.rs`, `watch.rs`).
//!
//! Every method has the same shape: the trait method builds the kernel's `Caller` from the
//! verified token and hands the request body to a use-case method, whose kernel `Error` becomes a
//! `tonic::Status` through `?`. Every use case acts on the caller's own inbox: the tenant comes
//! from the token (which must match the request's `tenant_id`), the user from its subject.

pub mod convert;
mod inbox;
mod notifications;
mod preferences;
mod watch;

use std::sync::Arc;

use async_nats::jetstream;
use keel_kernel::clock::SharedClock;
use keel_kernel::outbox::Outbox;
use sqlx::PgPool;

use crate::settings::Settings;

pub use notifications::Notifications;

/// What every handler shares.
pub struct Context {
    pub db: PgPool,
    pub outbox: Outbox,
    pub settings: Settings,
    pub clock: SharedClock,
    /// JetStream, for the watch stream's live feed.
    pub js: jetstream::Context,
    /// The JetStream stream every service publishes to.
    pub stream: String,
    /// The stream subject of `notifications.notification.>`.
    pub notification_subject: String,
}

pub type Shared = Arc<Context>;
