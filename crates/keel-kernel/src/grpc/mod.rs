//! The request plumbing every gRPC handler uses, written once: who is calling ([`Caller`],
//! [`RequestMeta`]), collecting field violations ([`Violations`]), paging ([`paging`]) and time
//! conversion ([`time`]).
//!
//! A handler reads like this, in every service:
//!
//! ```ignore
//! async fn create_invitation(&self, request: Request<pb::CreateInvitationRequest>)
//!     -> Result<Response<pb::Invitation>, Status> {
//!     let caller = Caller::from_request(&request)?;
//!     Ok(Response::new(self.invite(&caller, request.into_inner()).await?))
//! }
//! ```
//!
//! The `?` turns the kernel's [`crate::Error`] into a `tonic::Status` (with its google.rpc details,
//! in the error domain the platform set at start-up), logging an internal cause once.

mod caller;
pub mod paging;
pub mod time;
mod violations;

pub use caller::{Caller, RequestMeta};
pub use paging::{PageSize, PageToken};
pub use time::{from_timestamp, timestamp};
pub use violations::Violations;
