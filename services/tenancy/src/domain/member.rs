//! Memberships: who belongs to a tenant with which role, and the rule that a tenant always keeps
//! an owner.

use std::fmt;

use chrono::{DateTime, Utc};
use keel_kernel::auth::roles;
use keel_kernel::{Error, TenantId, UserId};
use uuid::Uuid;

/// A member's role: one of the built-in roles, or the id of one of the tenant's custom roles
/// (identity owns the role catalogue; tenancy only records the binding).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
    Custom(Uuid),
}

impl Role {
    pub fn parse(field: &str, value: &str) -> Result<Role, Error> {
        match value {
            roles::OWNER => Ok(Role::Owner),
            roles::ADMIN => Ok(Role::Admin),
            roles::MEMBER => Ok(Role::Member),
            roles::VIEWER => Ok(Role::Viewer),
            "" => Err(Error::invalid(field, "is required")),
            other => Uuid::parse_str(other).map(Role::Custom).map_err(|_| {
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

    /// Read a stored role; a bad one is a corrupt row.
    pub fn from_db(value: &str) -> Result<Role, Error> {
        Role::parse("role", value)
            .map_err(|_| Error::internal(anyhow::anyhow!("unknown role {value:?} in the database")))
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

/// An email address, trimmed and lowercased (addresses are compared case-insensitively). The check
/// is deliberately shallow: the invitation email proves deliverability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(field: &str, value: &str) -> Result<Email, Error> {
        let value = value.trim().to_lowercase();
        if value.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        if value.len() > Self::MAX_LEN {
            return Err(Error::invalid(
                field,
                format!("must be at most {} characters long", Self::MAX_LEN),
            ));
        }
        let valid = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if !valid {
            return Err(Error::invalid(
                field,
                "must be an email address like name@example.com",
            ));
        }
        Ok(Email(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's membership of a tenant, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Refuse a change that would leave the tenant without an owner: `member` is about to be removed
/// (`new_role` = None) or given `new_role`, and the tenant has `owners` owners now.
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
        return Err(Error::conflict(format!(
            "the last owner of a tenant cannot be {what}; make another member an owner first"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        let id = Uuid::now_v7();
        assert_eq!(
            Role::parse("role", &id.to_string()).ok(),
            Some(Role::Custom(id))
        );
        assert!(Role::parse("role", "superuser").is_err());
        assert!(Role::parse("role", "").is_err());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("email", " Ann@Example.COM ").map(|e| e.0).ok(),
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
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_last_owner_can_be_neither_removed_nor_demoted() {
        let owner = member(Role::Owner);
        assert!(keep_an_owner(&owner, None, 1).is_err());
        assert!(keep_an_owner(&owner, Some(&Role::Admin), 1).is_err());
        assert!(keep_an_owner(&owner, Some(&Role::Owner), 1).is_ok());
        assert!(keep_an_owner(&owner, None, 2).is_ok());
        assert!(keep_an_owner(&member(Role::Admin), None, 1).is_ok());
    }
}
