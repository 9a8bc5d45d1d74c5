//! Tenants and their lifecycle: pending_approval -> active <-> suspended -> deleted.

use chrono::{DateTime, Utc};
pub use keel_kernel::tenant::TenantState;
use keel_kernel::{Error, TenantId, UserId};

use super::Slug;

/// A tenant's display name: not blank, at most 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    pub const MAX_LEN: usize = 200;

    pub fn parse(field: &str, value: &str) -> Result<TenantName, Error> {
        let value = value.trim();
        if value.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        if value.chars().count() > Self::MAX_LEN {
            return Err(Error::invalid(
                field,
                format!("must be at most {} characters long", Self::MAX_LEN),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(Error::invalid(field, "must not contain control characters"));
        }
        Ok(TenantName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What can happen to a tenant after it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Approve,
    Suspend,
    Reactivate,
    Delete,
}

impl Lifecycle {
    /// The state after `action`, or FAILED_PRECONDITION naming the tenant's current state and the
    /// state the action needs.
    pub fn apply_to(self, state: TenantState) -> Result<TenantState, Error> {
        use TenantState::*;
        let next = match (state, self) {
            (PendingApproval, Lifecycle::Approve) => Active,
            (Active, Lifecycle::Suspend) => Suspended,
            (Suspended, Lifecycle::Reactivate) => Active,
            (PendingApproval | Active | Suspended, Lifecycle::Delete) => Deleted,
            (state, action) => {
                return Err(Error::failed_precondition(format!(
                    "cannot {} a tenant that is {}{}",
                    action.verb(),
                    state.describe(),
                    match action {
                        Lifecycle::Approve => "; only a tenant pending approval can be approved",
                        Lifecycle::Suspend => "; only an active tenant can be suspended",
                        Lifecycle::Reactivate => "; only a suspended tenant can be reactivated",
                        Lifecycle::Delete => "; only a tenant not yet deleted can be deleted",
                    }
                )));
            }
        };
        Ok(next)
    }

    fn verb(self) -> &'static str {
        match self {
            Lifecycle::Approve => "approve",
            Lifecycle::Suspend => "suspend",
            Lifecycle::Reactivate => "reactivate",
            Lifecycle::Delete => "delete",
        }
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub slug: String,
    pub state: TenantState,
    pub plan: String,
    pub created_by: UserId,
    pub suspended_reason: String,
    /// BCP 47 in canonical case; empty when the tenant has none.
    pub default_locale: String,
    pub version: i64,
    pub entitlements_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What CreateTenant needs from the request.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: TenantName,
    pub slug: Slug,
    /// Validated by [`parse_locale`]; empty when not given.
    pub default_locale: String,
}

/// A language setting: `""` (none) stays empty; anything else must be a well-formed BCP 47 tag
/// (the kernel's check), returned in canonical case, else INVALID_ARGUMENT on `field`.
pub fn parse_locale(field: &str, value: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    keel_kernel::RequestMeta::canonical_locale(value).ok_or_else(|| {
        Error::invalid(
            field,
            "must be a BCP 47 language tag such as ar, en, zh, ko or zh-Hant-TW",
        )
    })
}

/// UpdateTenant's changes: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantChanges {
    pub name: Option<TenantName>,
    pub default_locale: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::Lifecycle::*;
    use super::TenantState::*;
    use super::*;
    use keel_proto::tenancy::v1 as pb;

    #[test]
    fn the_happy_lifecycle_runs_from_pending_to_deleted() {
        let mut state = PendingApproval;
        for action in [Approve, Suspend, Reactivate, Suspend, Delete] {
            state = action.apply_to(state).expect("legal transition");
        }
        assert_eq!(state, Deleted);
    }

    #[test]
    fn illegal_transitions_are_failed_preconditions() {
        let illegal = [
            (PendingApproval, Suspend),
            (PendingApproval, Reactivate),
            (Active, Approve),
            (Active, Reactivate),
            (Suspended, Approve),
            (Suspended, Suspend),
            (Deleted, Approve),
            (Deleted, Reactivate),
            (Deleted, Delete),
        ];
        for (state, action) in illegal {
            let err = action.apply_to(state).expect_err("illegal transition");
            assert_eq!(
                err.code(),
                keel_kernel::ErrorCode::FailedPrecondition,
                "{state:?} {action:?}"
            );
        }
    }

    #[test]
    fn every_state_has_its_wire_value() {
        let wire: Vec<pb::TenantState> = [PendingApproval, Active, Suspended, Deleted]
            .into_iter()
            .map(Into::into)
            .collect();
        assert_eq!(
            wire,
            [
                pb::TenantState::PendingApproval,
                pb::TenantState::Active,
                pb::TenantState::Suspended,
                pb::TenantState::Deleted
            ]
        );
    }

    #[test]
    fn an_inactive_tenant_refuses_changes_naming_its_state() {
        let err = Suspended.require_active().expect_err("suspended");
        assert_eq!(err.code(), keel_kernel::ErrorCode::FailedPrecondition);
        assert!(err.message().contains("suspended"), "{}", err.message());
        assert!(Active.require_active().is_ok());
    }

    #[test]
    fn a_default_locale_is_canonicalised_or_refused_naming_the_field() {
        assert_eq!(
            parse_locale("tenant.default_locale", "ko-kr").unwrap(),
            "ko-KR"
        );
        assert_eq!(parse_locale("tenant.default_locale", "").unwrap(), "");
        let err = parse_locale("tenant.default_locale", "klingon!").unwrap_err();
        assert_eq!(err.violations()[0].field, "tenant.default_locale");
    }

    #[test]
    fn a_blank_name_is_refused_and_a_padded_one_trimmed() {
        assert!(TenantName::parse("tenant.name", "  ").is_err());
        assert_eq!(
            TenantName::parse("tenant.name", " Acme ").map(|n| n.0).ok(),
            Some("Acme".into())
        );
    }
}
