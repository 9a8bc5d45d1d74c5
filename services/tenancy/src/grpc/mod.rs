//! The gRPC surface: one file per proto service, one handler type per file.
//!
//! Every method has the same shape: the trait method builds the kernel's `Caller` from the
//! verified token and hands the request body to a use-case method, whose kernel `Error` becomes a
//! `tonic::Status` through `?`:
//!
//! ```ignore
//! async fn get_member(&self, request: Request<pb::GetMemberRequest>)
//!     -> Result<Response<pb::Membership>, Status> {
//!     let caller = Caller::from_request(&request)?;
//!     Ok(Response::new(self.get(&caller, request.into_inner()).await?))
//! }
//! ```
//!
//! A use-case method authorises the caller, turns the request into domain values (`convert`),
//! runs one transaction (the change and its events together) and turns the result back into
//! proto.

pub mod convert;
mod members;
mod modules;
mod tenants;

use std::sync::Arc;

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
}

pub type Shared = Arc<Context>;
