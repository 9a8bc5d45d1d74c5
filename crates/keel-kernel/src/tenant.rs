//! A tenant's lifecycle state: tenancy decides it; identity, the gateway and every service that
//! reacts to tenancy's events keep a copy, so the type and its rules are written once here.

use keel_proto::tenancy::v1 as pb;

use crate::error::Error;

/// Where a tenant is in its life. Stored as its snake_case name in a text column whose CHECK
/// constraint lists the same names; an unknown stored name fails the row's decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum TenantState {
    PendingApproval,
    Active,
    Suspended,
    Deleted,
}

impl TenantState {
    /// The state in words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            TenantState::PendingApproval => "pending approval",
            TenantState::Active => "active",
            TenantState::Suspended => "suspended",
            TenantState::Deleted => "deleted",
        }
    }

    /// Changes to a tenant's members, invitations, modules and flags need it in service
    /// (FAILED_PRECONDITION otherwise).
    pub fn require_active(self) -> Result<(), Error> {
        match self {
            TenantState::Active => Ok(()),
            other => Err(Error::failed_precondition(format!(
                "the tenant is {}; this needs an active tenant",
                other.describe()
            ))),
        }
    }
}

/// The wire enum of tenancy's API and events.
impl From<TenantState> for pb::TenantState {
    fn from(state: TenantState) -> pb::TenantState {
        match state {
            TenantState::PendingApproval => pb::TenantState::PendingApproval,
            TenantState::Active => pb::TenantState::Active,
            TenantState::Suspended => pb::TenantState::Suspended,
            TenantState::Deleted => pb::TenantState::Deleted,
        }
    }
}
