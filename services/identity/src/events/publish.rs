//! Identity's events, written to the outbox in the transaction of the change they announce.

use keel_kernel::db::Tx;
use keel_kernel::outbox::{NewEvent, Outbox};
use keel_kernel::{Error, TenantId};
use keel_proto::events::v1::actor;
use keel_proto::identity::v1 as pb;

use crate::grpc::context::Meta;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::sessions::SessionRow;

/// Why a session ended, as stored and as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    Logout,
    UserRequest,
    PasswordChanged,
    RefreshTokenReuse,
    MemberRemoved,
    TenantSuspended,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::UserRequest => "user_request",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::RefreshTokenReuse => "refresh_token_reuse",
            RevokeReason::MemberRemoved => "member_removed",
            RevokeReason::TenantSuspended => "tenant_suspended",
        }
    }

    fn proto(self) -> pb::SessionRevokeReason {
        match self {
            RevokeReason::Logout => pb::SessionRevokeReason::Logout,
            RevokeReason::UserRequest => pb::SessionRevokeReason::UserRequest,
            RevokeReason::PasswordChanged => pb::SessionRevokeReason::PasswordChanged,
            RevokeReason::RefreshTokenReuse => pb::SessionRevokeReason::RefreshTokenReuse,
            RevokeReason::MemberRemoved => pb::SessionRevokeReason::MemberRemoved,
            RevokeReason::TenantSuspended => pb::SessionRevokeReason::TenantSuspended,
        }
    }
}

/// Who caused an event, in the envelope's terms.
pub fn envelope_actor(kind: &str) -> actor::Kind {
    match kind {
        "user" => actor::Kind::User,
        "api_key" => actor::Kind::ApiKey,
        "service" => actor::Kind::Service,
        _ => actor::Kind::System,
    }
}

/// Announce and audit revoked sessions, in the transaction that revoked them.
pub async fn sessions_revoked(
    outbox: &Outbox,
    tx: &mut Tx,
    sessions: &[SessionRow],
    reason: RevokeReason,
    meta: &Meta,
    actor: (&'static str, String),
) -> Result<(), Error> {
    for session in sessions {
        let payload = pb::SessionRevoked {
            session_id: session.id.to_string(),
            user_id: session.user_id.to_string(),
            tenant_id: session
                .scope_tenant
                .map(|t| t.to_string())
                .unwrap_or_default(),
            reason: reason.proto() as i32,
        };
        let mut event = NewEvent::new("identity.session.revoked", session.id, &payload)?
            .actor(envelope_actor(actor.0), &actor.1)
            .correlation(&meta.request_id, &meta.request_id);
        if let Some(tenant) = session.scope_tenant {
            event = event.tenant(tenant);
        }
        outbox.enqueue(tx, event).await?;
        let mut entry: AuditEntry = meta.audit(
            actor.clone(),
            "identity.session.revoke",
            "session",
            session.id,
        );
        entry
            .metadata
            .insert("reason".into(), reason.as_str().into());
        audit::record_account(tx, session.user_id, &entry).await?;
    }
    Ok(())
}

/// An event about a tenant's resource, by the request's actor.
pub fn tenant_event<M: prost::Name>(
    event_type: &str,
    aggregate_id: impl ToString,
    payload: &M,
    tenant: TenantId,
    meta: &Meta,
    actor: &(&'static str, String),
) -> Result<NewEvent, Error> {
    Ok(NewEvent::new(event_type, aggregate_id, payload)?
        .tenant(tenant)
        .actor(envelope_actor(actor.0), &actor.1)
        .correlation(&meta.request_id, &meta.request_id))
}
