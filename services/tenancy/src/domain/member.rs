//! Memberships: who belongs to a tenant with which role, and the rule that a tenant always keeps
//! an owner.

use std::fmt;

use chrono::{DateTime, Utc};
use keel_kernel::auth::{ALL_PERMISSIONS, Claims, roles};
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

/// AUTHZ unless the caller's token holds every permission `role` grants: nobody grants, invites
/// with, or takes away a role that could do more than they can (issue 8: an admin must not reach
/// owner-only rights through someone else's role, or an accomplice's).
///
/// A built-in role's patterns come from the kernel's catalogue, and a pattern of the token covers
/// a pattern of the role segment by segment (`identity.*.*` covers `identity.role.*`; `*` covers
/// everything). A custom role's permissions live in identity and may be any catalogue entry,
/// changeable at any time after this check: tenancy treats a custom role as if it granted
/// everything, so only a token holding `*` (an owner's) grants one. Mirroring identity's role
/// catalogue here from its events would be more permissive, but it would also be a second copy
/// that can lag behind an edit of the role, and a lag here is an escalation.
pub fn require_may_grant(claims: &Claims, role: &Role) -> Result<(), Error> {
    let patterns = match role {
        Role::Custom(_) => vec![ALL_PERMISSIONS],
        built_in => roles::built_in(&built_in.to_string()).unwrap_or_default(),
    };
    match patterns
        .iter()
        .find(|pattern| !claims.has_permission(pattern))
    {
        None => Ok(()),
        Some(_) if matches!(role, Role::Custom(_)) => Err(Error::forbidden(
            "only an owner can grant a custom role: its permissions are identity's, and may be any",
        )),
        Some(missing) => Err(Error::forbidden(format!(
            "the role {role} grants {missing}, which the caller does not hold; nobody grants more \
             than they hold"
        ))),
    }
}

/// AUTHZ when `caller` is `member`: a role is changed by someone else, never by its holder, so a
/// holder of `tenancy.member.update` cannot raise (or reshape) their own rights.
pub fn refuse_own_role_change(caller: Option<UserId>, member: UserId) -> Result<(), Error> {
    if caller == Some(member) {
        return Err(Error::forbidden(
            "nobody changes their own role; another member with the right to must do it",
        ));
    }
    Ok(())
}

/// A user's membership of a tenant, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
    /// The member's own address as their verified token gave it when they accepted the invitation
    /// (it equals the invited address, letter case aside); empty for the tenant's creator.
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

    fn claims(perms: &[&str]) -> Claims {
        Claims {
            sub: UserId::new().to_string(),
            kind: Default::default(),
            tid: Some(TenantId::new()),
            roles: Vec::new(),
            perms: perms.iter().map(|p| (*p).to_owned()).collect(),
            sid: None,
            email: None,
            email_verified: false,
            scopes: Vec::new(),
            iss: String::new(),
            aud: String::new(),
            exp: 0,
            iat: 0,
            nbf: None,
            jti: String::new(),
        }
    }

    #[test]
    fn a_role_is_granted_only_by_a_token_covering_all_of_its_patterns() {
        let built_in = |role: &str| roles::built_in(role).unwrap_or_default();
        let owner = claims(&built_in(roles::OWNER));
        let admin = claims(&built_in(roles::ADMIN));
        let member = claims(&built_in(roles::MEMBER));
        let custom = Role::Custom(RoleId::new());
        for role in [
            Role::Owner,
            Role::Admin,
            Role::Member,
            Role::Viewer,
            custom.clone(),
        ] {
            assert!(require_may_grant(&owner, &role).is_ok(), "{role}");
        }
        assert!(require_may_grant(&admin, &Role::Admin).is_ok());
        assert!(require_may_grant(&admin, &Role::Member).is_ok());
        assert!(require_may_grant(&admin, &Role::Owner).is_err());
        assert!(require_may_grant(&admin, &custom).is_err());
        assert!(require_may_grant(&member, &Role::Viewer).is_ok());
        assert!(require_may_grant(&member, &Role::Admin).is_err());
        // Narrower patterns never cover a wider one.
        let narrow = claims(&["identity.role.*", "tenancy.member.*"]);
        assert!(require_may_grant(&narrow, &Role::Admin).is_err());
    }

    #[test]
    fn nobody_changes_their_own_role() {
        let me = UserId::new();
        assert!(refuse_own_role_change(Some(me), me).is_err());
        assert!(refuse_own_role_change(Some(me), UserId::new()).is_ok());
        assert!(refuse_own_role_change(None, me).is_ok());
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
