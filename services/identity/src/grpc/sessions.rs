//! Logout and tenant switching, and the session mechanics the login use cases share: what a user
//! may do in a tenant, and issuing a token pair for a session.

use std::str::FromStr;

use chrono::Utc;
use keel_kernel::db::{self, TenantTx};
use keel_kernel::{Caller, Error, TenantId, UserId};
use keel_proto::identity::v1 as pb;
use sqlx::PgConnection;

use super::Context;
use super::auth::Auth;
use crate::domain::audit::{actions, targets};
use crate::domain::{AuditEntry, Email, RevokeReason, RoleId, SessionId, TenantState};
use crate::domain::{permissions, secrets};
use crate::events::publish;
use crate::repo::{audit, roles, sessions, tenancy, users};
use crate::tokens::Grants;

/// The user's grants in the transaction's tenant, or `None` unless the tenant is active and the
/// user is a member.
pub(super) async fn grants_in(tx: &mut TenantTx, user: UserId) -> Result<Option<Grants>, Error> {
    let tenant = tx.tenant();
    if tenancy::tenant_state(tx, tenant).await? != Some(TenantState::Active) {
        return Ok(None);
    }
    let Some(role) = tenancy::member_role(tx, user).await? else {
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
        Ok(id) => roles::get(tx, id).await?,
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
pub(super) async fn unscoped_grants(
    ctx: &Context,
    conn: &mut PgConnection,
    user: UserId,
) -> Result<Grants, Error> {
    if ctx.settings.platform_admins.is_empty() {
        return Ok(Grants::default());
    }
    // Matched by a verified address only: otherwise whoever registers a configured address
    // first would be a platform admin.
    let Some(found) = users::get(conn, user).await?.filter(|u| u.email_verified) else {
        return Ok(Grants::default());
    };
    let email = Email::normalize(&found.email);
    let is_admin = ctx
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
pub(super) fn not_a_member() -> Error {
    Error::forbidden("not a member of an active tenant with that id")
}

/// Rotate the session's refresh token and sign an access token: the pair a client receives.
/// Every earlier refresh token of the session becomes a used one (presenting it is reuse).
pub(super) async fn issue_pair(
    ctx: &Context,
    conn: &mut PgConnection,
    user: UserId,
    session: SessionId,
    tenant: Option<TenantId>,
    grants: Grants,
) -> Result<pb::TokenPair, Error> {
    let account = users::get(conn, user)
        .await?
        .ok_or_else(|| Error::unauthenticated("the account no longer exists"))?;
    let refresh = secrets::new_refresh_token();
    sessions::retire_refresh_tokens(conn, session).await?;
    sessions::add_refresh_token(conn, session, &secrets::hash(&refresh)).await?;
    let now = Utc::now();
    let expires_at = now + chrono::Duration::seconds(ctx.settings.tokens.refresh_ttl_secs as i64);
    let access_expires_at = now + chrono::Duration::seconds(ctx.tokens.access_ttl());
    sessions::touch(conn, session, tenant, expires_at, access_expires_at).await?;
    let access = ctx.tokens.user_token(&account, session, tenant, grants)?;
    Ok(pb::TokenPair {
        access_token: access.token,
        refresh_token: refresh,
        expires_in: access.expires_in as i32,
        token_type: "Bearer".into(),
        tenant_id: tenant.map(|t| t.to_string()).unwrap_or_default(),
    })
}

/// The caller's user and session, for calls that act on the caller's own session.
pub(super) fn session_of(caller: &Caller) -> Result<(UserId, SessionId), Error> {
    let user = caller.user()?;
    let session = caller
        .claims
        .sid
        .as_deref()
        .and_then(|sid| sid.parse().ok())
        .ok_or_else(|| Error::unauthenticated("the token has no session"))?;
    Ok((user, session))
}

impl Auth {
    #[tracing::instrument(skip_all)]
    pub(super) async fn logout(&self, caller: &Caller) -> Result<(), Error> {
        let ctx = &self.0;
        let (user, session) = session_of(caller)?;
        let reason = RevokeReason::Logout;
        let mut tx = db::unscoped_tx(&ctx.db).await?;
        // Already revoked is fine: logging out twice ends in the same place.
        if let Some(revoked) = sessions::revoke(&mut tx, user, session, reason).await? {
            let actor = caller.actor();
            publish::sessions_revoked(
                &ctx.outbox,
                &mut tx,
                &[revoked],
                reason,
                &caller.meta,
                &actor,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn switch_tenant(
        &self,
        caller: &Caller,
        request: pb::SwitchTenantRequest,
    ) -> Result<pb::TokenPair, Error> {
        let ctx = &self.0;
        let (user, session_id) = session_of(caller)?;
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        // Scoped to the tenant for its role bindings; sessions and the account log are global.
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let session = sessions::get(&mut tx, session_id).await?;
        if !session.is_some_and(|s| s.user_id == user && s.is_live(Utc::now())) {
            return Err(Error::unauthenticated(
                "the session has ended; log in again",
            ));
        }
        let grants = grants_in(&mut tx, user).await?.ok_or_else(not_a_member)?;
        let pair = issue_pair(ctx, &mut tx, user, session_id, Some(tenant), grants).await?;
        let entry = AuditEntry::by(
            caller,
            actions::SESSION_SWITCH_TENANT,
            targets::SESSION,
            session_id,
        )
        .with("tenant_id", tenant.to_string());
        audit::record_account(&mut tx, user, &entry).await?;
        tx.commit().await?;
        Ok(pair)
    }
}
