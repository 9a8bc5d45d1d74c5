//! Tenancy's domain: validated values and the rules that do not need a database.
//!
//! Everything here is built from request fields through `parse` functions that name the field at
//! fault, so the gRPC layer reports every invalid field at once (the kernel's `Violations`).
//! State refusals are FAILED_PRECONDITION naming the current state and what is allowed.

pub mod ids;
pub mod invitation;
pub mod member;
pub mod module;
pub mod permissions;
pub mod slug;
pub mod tenant;

pub use ids::{InvitationId, RoleId};
pub use invitation::{Invitation, InvitationState, InvitationToken};
pub use member::{Membership, Role};
pub use module::{FeatureFlag, FlagName, Module, ModuleName, TenantModule};
pub use slug::Slug;
pub use tenant::{
    Lifecycle, NewTenant, Tenant, TenantChanges, TenantName, TenantState, parse_locale,
};
