//! Session mechanics shared by the handlers: what a user may do in a tenant, and issuing a token
//! pair for a session.

use std::str::FromStr;

use keel_kernel::db::{self, Tx};
use keel_kernel::{Error, TenantId, UserId};
use keel_proto::identity::v1 as pb;

use super::State;
use crate::domain::{Email, RoleId, SessionId, permissions, secrets};
use crate::repo::tenancy::TenantState;
use crate::repo::{roles, sessions, tenancy, users};
use crate::tokens::Grants;

/// The user's grants in `tenant`, or `None` unless the tenant is active and the user is a member.
/// Scopes `tx` to `tenant` (its global reads are unaffected).
pub async fn grants_in(
    tx: &mut Tx,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<Grants>, Error> {
    db::set_tenant(tx, tenant).await?;
    if tenancy::tenant_state(tx, tenant).await? != Some(TenantState::Active) {
        return Ok(None);
    }
    let Some(role) = tenancy::member_role(tx, tenant, user).await? else {
        return Ok(None);
    };
    if let Some(perms) = permissions::built_in(&role) {
        return Ok(Some(Grants {
            roles: vec![role],
            perms,
        }));
    }
    // A custom role is bound by id; one deleted since grants nothing, but membership remains.
    let custom = match RoleId::from_str(&role) {
        Ok(id) => roles::get(tx, tenant, id).await?,
        Err(_) => None,
    };
    Ok(Some(match custom {
        Some(role) => Grants {
            roles: vec![role.name],
            perms: role.permissions,
        },
        None => Grants::default(),
    }))
}

/// The grants of an unscoped token: none, except the platform rights of a platform admin.
pub async fn unscoped_grants(state: &State, tx: &mut Tx, user: UserId) -> Result<Grants, Error> {
    if state.settings.platform_admins.is_empty() {
        return Ok(Grants::default());
    }
    let Some(row) = users::get(tx, user).await? else {
        return Ok(Grants::default());
    };
    let email = Email::normalize(&row.email);
    let is_admin = state
        .settings
        .platform_admins
        .iter()
        .any(|admin| Email::normalize(admin) == email);
    Ok(match is_admin {
        true => Grants {
            roles: vec![permissions::PLATFORM_ADMIN_ROLE.to_owned()],
            perms: permissions::PLATFORM
                .iter()
                .map(|perm| (*perm).to_owned())
                .collect(),
        },
        false => Grants::default(),
    })
}

/// The refusal for a tenant the user may not act in: the same whether the tenant is unknown,
/// inactive, or the user is not a member.
pub fn not_a_member() -> Error {
    Error::forbidden("not a member of an active tenant with that id")
}

/// Rotate the session's refresh token and sign an access token: the pair a client receives.
/// Every earlier refresh token of the session becomes a used one (presenting it is reuse).
pub async fn issue_pair(
    state: &State,
    tx: &mut Tx,
    user: UserId,
    session: SessionId,
    tenant: Option<TenantId>,
    grants: Grants,
) -> Result<pb::TokenPair, Error> {
    let refresh = secrets::new_refresh_token();
    sessions::retire_refresh_tokens(tx, session).await?;
    sessions::add_refresh_token(tx, session, &secrets::hash(&refresh)).await?;
    let expires_at = chrono::Utc::now()
        + chrono::Duration::seconds(state.settings.tokens.refresh_ttl_secs as i64);
    sessions::touch(tx, session, tenant, expires_at).await?;
    let access = state.tokens.user_token(user, session, tenant, grants)?;
    Ok(pb::TokenPair {
        access_token: access.token,
        refresh_token: refresh,
        expires_in: access.expires_in as i32,
        token_type: "Bearer".into(),
        tenant_id: tenant.map(|t| t.to_string()).unwrap_or_default(),
    })
}
