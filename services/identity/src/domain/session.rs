//! Login sessions and why they end.

use chrono::{DateTime, Utc};
use keel_kernel::{TenantId, UserId};

use super::SessionId;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    /// The tenant the session's tokens are scoped to, if any.
    pub scope_tenant: Option<TenantId>,
    pub user_agent: String,
    pub ip_address: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the latest access token issued for the session expires.
    pub access_expires_at: DateTime<Utc>,
}

impl Session {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Why a session ended, as stored (`sessions.revoke_reason`) and as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum RevokeReason {
    Logout,
    UserRequest,
    PasswordChanged,
    RefreshTokenReuse,
    MemberRemoved,
    TenantSuspended,
    PasswordReset,
}

impl RevokeReason {
    /// The name stored and written into audit metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::UserRequest => "user_request",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::RefreshTokenReuse => "refresh_token_reuse",
            RevokeReason::MemberRemoved => "member_removed",
            RevokeReason::TenantSuspended => "tenant_suspended",
            RevokeReason::PasswordReset => "password_reset",
        }
    }
}
