//! The gRPC surface: one proto service (MarketplaceService), one handler type (`Marketplace`),
//! its use cases split by concept (`listings`, `offers`, `orders`, `disputes`).
//!
//! Every method has the same shape: the trait method builds the kernel's `Caller` from the
//! verified token and hands the request body to a use-case method, whose kernel `Error` becomes a
//! `tonic::Status` through `?`. A use case authorises the caller, turns the request into domain
//! values (`convert`), runs one transaction (the change and its events together) and turns the
//! result back into proto.

pub mod convert;
mod disputes;
mod listings;
mod marketplace;
mod offers;
mod orders;

use std::sync::Arc;

use keel_kernel::clock::SharedClock;
use keel_kernel::outbox::Outbox;
use keel_kernel::{Caller, Error, TenantId, UserId};
use sqlx::PgPool;

use crate::settings::Settings;

pub use marketplace::Marketplace;

/// What every handler shares.
pub struct Context {
    pub db: PgPool,
    pub outbox: Outbox,
    pub settings: Arc<Settings>,
    pub clock: SharedClock,
}

pub type Shared = Arc<Context>;

/// The tenant (the token's, which must be the request's) and the calling user, after checking
/// `permission`: every marketplace action is a user's (buyer, seller or operator).
fn user_in_tenant(
    caller: &Caller,
    tenant: &str,
    permission: &str,
) -> Result<(TenantId, UserId), Error> {
    let tenant = caller.tenant_with(TenantId::parse_field("tenant_id", tenant)?, permission)?;
    Ok((tenant, caller.user()?))
}
