//! The gRPC surface: one handler type per proto service. Each method authorises the caller from
//! the verified token, turns the request into domain values, runs one transaction (the change and
//! its events together), and turns the result back into proto.

pub mod convert;
mod members;
mod modules;
pub mod page;
mod tenants;

use std::sync::Arc;

use keel_kernel::Error;
use keel_kernel::outbox::Outbox;
use sqlx::PgPool;

use crate::settings::Settings;

pub use members::Memberships;
pub use modules::Modules;
pub use tenants::Tenants;

/// What every handler shares.
pub struct Context {
    pub db: PgPool,
    pub outbox: Outbox,
    pub settings: Settings,
    /// The error domain of statuses (the service name).
    pub domain: String,
}

pub type Shared = Arc<Context>;

impl Context {
    /// The one place a handler's error becomes a status (and an internal cause is logged).
    fn reply<T>(&self, result: Result<T, Error>) -> Result<tonic::Response<T>, tonic::Status> {
        result
            .map(tonic::Response::new)
            .map_err(|err| err.into_status_in(&self.domain))
    }
}
