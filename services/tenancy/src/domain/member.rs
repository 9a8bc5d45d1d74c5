//! Memberships: who belongs to a tenant with which role, and the rule that a tenant always keeps
//! an owner.

use std::fmt;

use chrono::{DateTime, Utc};
use keel_kernel::auth::roles;
use keel_kernel::{Error, TenantId, UserId};
use sqlx::Postgres;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};

use super::RoleId;

/// A member's role: one of the built-in roles, or the id of one of the tenant's custom roles
/// (identity owns the role catalogue; tenancy only records the binding).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
    Custom(RoleId),
}

impl Role {
    pub fn parse(field: &str, value: &str) -> Result<Role, Error> {
        match value {
            roles::OWNER => Ok(Role::Owner),
            roles::ADMIN => Ok(Role::Admin),
            roles::MEMBER => Ok(Role::Member),
            roles::VIEWER => Ok(Role::Viewer),
            "" => Err(Error::invalid(field, "is required")),
            other => other.parse().map(Role::Custom).map_err(|_| {
                Error::invalid(
                    field,
                    format!(
                        "must be one of {} or a custom role id (a UUID)",
                        roles::BUILT_IN.join(", ")
                    ),
                )
            }),
        }
    }

    pub fn is_owner(&self) -> bool {
        matches!(self, Role::Owner)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Owner => f.write_str(roles::OWNER),
            Role::Admin => f.write_str(roles::ADMIN),
            Role::Member => f.write_str(roles::MEMBER),
            Role::Viewer => f.write_str(roles::VIEWER),
            Role::Custom(id) => id.fmt(f),
        }
    }
}

// Stored as text: a built-in role's name or a custom role's id, exactly as on the wire. Written by
// hand, not derived: `#[derive(sqlx::Type)]` covers a plain set of names (see `TenantState`), and
// a role is a name *or* an id. Going through `Display`/`Role::parse` keeps one spelling for the
// database, the API and the events; an unknown stored value fails the row's decoding (INTERNAL),
// never a silent default.
impl sqlx::Type<Postgres> for Role {
    fn type_info() -> PgTypeInfo {
        <String as sqlx::Type<Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, Postgres> for Role {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <String as sqlx::Encode<Postgres>>::encode(self.to_string(), buf)
    }
}

impl sqlx::Decode<'_, Postgres> for Role {
    fn decode(value: PgValueRef<'_>) -> Result<Role, BoxDynError> {
        let text = <&str as sqlx::Decode<Postgres>>::decode(value)?;
        Role::parse("role", text)
            .map_err(|_| format!("unknown role {text:?} in the database").into())
    }
}

/// A user's membership of a tenant, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
    /// The address the member was invited at, normalised; empty for the tenant's creator.
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Refuse a change that would leave the tenant without an owner: `member` is about to be removed
/// (`new_role` = None) or given `new_role`, and the tenant has `owners` owners now.
/// FAILED_PRECONDITION, as tenancy.proto promises: the tenant's state, not the request, is at fault.
pub fn keep_an_owner(
    member: &Membership,
    new_role: Option<&Role>,
    owners: i64,
) -> Result<(), Error> {
    let loses_owner = member.role.is_owner() && !new_role.is_some_and(Role::is_owner);
    if loses_owner && owners <= 1 {
        let what = if new_role.is_some() {
            "demoted"
        } else {
            "removed"
        };
        return Err(Error::failed_precondition(format!(
            "the last owner of a tenant cannot be {what}; make another member an owner first"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use keel_kernel::{Email, ErrorCode};

    use super::*;

    fn member(role: Role) -> Membership {
        Membership {
            tenant_id: TenantId::new(),
            user_id: UserId::new(),
            role,
            email: String::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn built_in_roles_and_custom_role_ids_parse() {
        assert_eq!(Role::parse("role", "owner").ok(), Some(Role::Owner));
        assert_eq!(Role::parse("role", "viewer").ok(), Some(Role::Viewer));
        let id = RoleId::new();
        assert_eq!(
            Role::parse("role", &id.to_string()).ok(),
            Some(Role::Custom(id))
        );
        assert!(Role::parse("role", "superuser").is_err());
        assert!(Role::parse("role", "").is_err());
    }

    /// Tenancy stores and compares an invitee's address in its normalised form, as it did before
    /// it used the kernel's `Email`; the kernel's rules also refuse `a@b..c` now.
    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("email", " Ann@Example.COM ")
                .map(|e| e.normalized().to_owned())
                .ok(),
            Some("ann@example.com".into())
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@c.com",
            "a@b..c",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_last_owner_can_be_neither_removed_nor_demoted() {
        let owner = member(Role::Owner);
        let refusal = |result: Result<(), Error>| result.map_err(|err| err.code()).err();
        assert_eq!(
            refusal(keep_an_owner(&owner, None, 1)),
            Some(ErrorCode::FailedPrecondition)
        );
        assert_eq!(
            refusal(keep_an_owner(&owner, Some(&Role::Admin), 1)),
            Some(ErrorCode::FailedPrecondition)
        );
        assert!(keep_an_owner(&owner, Some(&Role::Owner), 1).is_ok());
        assert!(keep_an_owner(&owner, None, 2).is_ok());
        assert!(keep_an_owner(&member(Role::Admin), None, 1).is_ok());
    }
}
