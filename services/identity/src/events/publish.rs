//! Identity's events, written to the outbox in the transaction of the change they announce.

use keel_kernel::grpc::RequestMeta;
use keel_kernel::outbox::{NewEvent, Outbox};
use keel_kernel::{Actor, Error, TenantId};
use keel_proto::identity::v1 as pb;
use sqlx::PgConnection;

use crate::domain::audit::{actions, targets};
use crate::domain::{AuditEntry, RevokeReason, Session};
use crate::repo::audit;

/// The event types identity publishes (`events.<type>` subjects).
pub mod types {
    pub const USER_REGISTERED: &str = "identity.user.registered";
    pub const USER_VERIFICATION_REQUESTED: &str = "identity.user.verification_requested";
    pub const USER_PASSWORD_RESET_REQUESTED: &str = "identity.user.password_reset_requested";
    pub const SESSION_NEW_DEVICE_SIGN_IN: &str = "identity.session.new_device_sign_in";
    pub const SESSION_REVOKED: &str = "identity.session.revoked";
    pub const ROLE_CREATED: &str = "identity.role.created";
    pub const API_KEY_CREATED: &str = "identity.api_key.created";
    pub const API_KEY_REVOKED: &str = "identity.api_key.revoked";
}

fn reason_proto(reason: RevokeReason) -> pb::SessionRevokeReason {
    match reason {
        RevokeReason::Logout => pb::SessionRevokeReason::Logout,
        RevokeReason::UserRequest => pb::SessionRevokeReason::UserRequest,
        RevokeReason::PasswordChanged => pb::SessionRevokeReason::PasswordChanged,
        RevokeReason::RefreshTokenReuse => pb::SessionRevokeReason::RefreshTokenReuse,
        RevokeReason::MemberRemoved => pb::SessionRevokeReason::MemberRemoved,
        RevokeReason::TenantSuspended => pb::SessionRevokeReason::TenantSuspended,
        RevokeReason::PasswordReset => pb::SessionRevokeReason::PasswordReset,
    }
}

/// An event about a user's account (no tenant), by `actor`, correlated with the request.
pub fn account_event<M: prost::Name>(
    event_type: &str,
    aggregate_id: impl ToString,
    payload: &M,
    meta: &RequestMeta,
    actor: &Actor,
) -> Result<NewEvent, Error> {
    Ok(NewEvent::new(event_type, aggregate_id, payload)?
        .actor(actor)
        .correlation(&meta.request_id, &meta.request_id))
}

/// An event about a tenant's resource, by `actor`, correlated with the request.
pub fn tenant_event<M: prost::Name>(
    event_type: &str,
    aggregate_id: impl ToString,
    payload: &M,
    tenant: TenantId,
    meta: &RequestMeta,
    actor: &Actor,
) -> Result<NewEvent, Error> {
    Ok(account_event(event_type, aggregate_id, payload, meta, actor)?.tenant(tenant))
}

/// Announce and audit revoked sessions, in the transaction that revoked them.
pub async fn sessions_revoked(
    outbox: &Outbox,
    conn: &mut PgConnection,
    sessions: &[Session],
    reason: RevokeReason,
    meta: &RequestMeta,
    actor: &Actor,
) -> Result<(), Error> {
    for session in sessions {
        let payload = pb::SessionRevoked {
            session_id: session.id.to_string(),
            user_id: session.user_id.to_string(),
            tenant_id: session
                .scope_tenant
                .map(|t| t.to_string())
                .unwrap_or_default(),
            reason: reason_proto(reason) as i32,
            tokens_expire_time: Some(keel_kernel::grpc::timestamp(session.access_expires_at)),
        };
        let mut event = account_event(types::SESSION_REVOKED, session.id, &payload, meta, actor)?;
        if let Some(tenant) = session.scope_tenant {
            event = event.tenant(tenant);
        }
        outbox.enqueue(conn, event).await?;
        let entry = AuditEntry::new(
            actor.clone(),
            meta,
            actions::SESSION_REVOKE,
            targets::SESSION,
            session.id,
        )
        .with("reason", reason.as_str());
        audit::record_account(conn, session.user_id, &entry).await?;
    }
    Ok(())
}
