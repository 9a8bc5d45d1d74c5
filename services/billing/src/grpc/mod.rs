//! The gRPC surface: one file per proto service (billing has one), one handler type per file.
//!
//! Every method has the same shape: the trait method builds the kernel's `Caller` from the
//! verified token and hands the request body to a use-case method, whose kernel `Error` becomes a
//! `tonic::Status` through `?`:
//!
//! ```ignore
//! async fn get_invoice(&self, request: Request<pb::GetInvoiceRequest>)
//!     -> Result<Response<pb::Invoice>, Status> {
//!     let caller = Caller::from_request(&request)?;
//!     Ok(Response::new(self.get_invoice(&caller, request.into_inner()).await?))
//! }
//! ```
//!
//! A use-case method authorises the caller, turns the request into domain values (`convert`),
//! runs one transaction (the change and its events together, through `ops`) and turns the result
//! back into proto.

mod billing;
pub mod convert;

use std::sync::Arc;

use keel_kernel::clock::SharedClock;
use keel_kernel::outbox::Outbox;
use sqlx::PgPool;

use crate::ops::Env;
use crate::settings::Settings;

pub use billing::Billing;

/// What every handler shares.
pub struct Context {
    pub db: PgPool,
    pub outbox: Outbox,
    pub settings: Arc<Settings>,
    pub clock: SharedClock,
}

impl Context {
    /// The use cases' environment at this instant.
    pub fn env(&self) -> Env<'_> {
        Env {
            outbox: &self.outbox,
            settings: &self.settings,
            now: self.clock.now(),
        }
    }
}

pub type Shared = Arc<Context>;
