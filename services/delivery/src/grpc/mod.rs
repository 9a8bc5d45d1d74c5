//! The gRPC surface: one proto service (`DeliveryService`), one handler type (`Delivery`), its
//! use cases split by concern (`projects.rs`, `tasks.rs`, `watch.rs`).
//!
//! Every method has the same shape: the trait method builds the kernel's `Caller` from the
//! verified token and hands the request body to a use-case method, whose kernel `Error` becomes a
//! `tonic::Status` through `?`:
//!
//! ```ignore
//! async fn get_task(&self, request: Request<pb::GetTaskRequest>)
//!     -> Result<Response<pb::Task>, Status> {
//!     let caller = Caller::from_request(&request)?;
//!     Ok(Response::new(self.get_task(&caller, request.into_inner()).await?))
//! }
//! ```
//!
//! A use-case method authorises the caller, turns the request into domain values (`convert`),
//! runs one transaction (lock, check, write, the events and the change log together) and turns
//! the result back into proto.

pub mod convert;
mod delivery;
mod projects;
mod tasks;
mod watch;

use std::sync::Arc;

use async_nats::jetstream;
use keel_kernel::clock::SharedClock;
use keel_kernel::outbox::Outbox;
use sqlx::PgPool;

use crate::settings::Settings;

pub use delivery::Delivery;

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
    /// The stream subject of delivery's task events (`events.delivery.task.>`).
    pub task_subject: String,
}

pub type Shared = Arc<Context>;
