//! Who is calling and from where: the verified claims, the request id, and the client address
//! the gateway forwards.

use keel_kernel::auth::{self, Claims, PrincipalKind};
use keel_kernel::server::request_id;
use keel_kernel::{Error, TenantId};

use crate::repo::audit::AuditEntry;

/// Request facts a handler needs besides its message.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub request_id: String,
    /// The client's address: `x-forwarded-for` (first hop) or `x-real-ip` set by the gateway,
    /// else the peer address. Only the gateway reaches identity, so these headers are its own.
    pub ip: String,
    pub user_agent: String,
}

impl Meta {
    pub fn of<T>(request: &tonic::Request<T>) -> Meta {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        let forwarded = header("x-forwarded-for")
            .and_then(|value| value.split(',').next())
            .map(str::trim)
            .filter(|value| !value.is_empty());
        let ip = forwarded
            .or_else(|| header("x-real-ip"))
            .map(|ip| ip.chars().take(64).collect())
            .or_else(|| request.remote_addr().map(|addr| addr.ip().to_string()))
            .unwrap_or_default();
        Meta {
            request_id: request_id(request)
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            ip,
            user_agent: header("user-agent")
                .map(|ua| ua.chars().take(256).collect())
                .unwrap_or_default(),
        }
    }

    /// An audit entry by `actor` with this request's id and address.
    pub fn audit(
        &self,
        actor: (&'static str, String),
        action: &'static str,
        target_type: &'static str,
        target_id: impl ToString,
    ) -> AuditEntry {
        AuditEntry {
            actor_kind: actor.0,
            actor_id: actor.1,
            action,
            target_type,
            target_id: target_id.to_string(),
            request_id: self.request_id.clone(),
            ip_address: self.ip.clone(),
            metadata: Default::default(),
        }
    }
}

/// The verified claims of the request (AUTHN when there are none).
pub fn claims<T>(request: &tonic::Request<T>) -> Result<Claims, Error> {
    auth::claims(request).cloned()
}

/// The audit actor of a token.
pub fn actor(claims: &Claims) -> (&'static str, String) {
    let kind = match claims.kind {
        PrincipalKind::User => "user",
        PrincipalKind::ApiKey => "api_key",
        PrincipalKind::Service => "service",
    };
    (kind, claims.sub.clone())
}

/// The tenant a tenant-scoped request acts in: the request's `tenant_id` must be the token's.
/// The tenant always comes from the verified token; the field only has to agree with it.
pub fn tenant_scope(claims: &Claims, requested: &str) -> Result<TenantId, Error> {
    let requested = TenantId::parse_field("tenant_id", requested)?;
    let tenant = claims.tenant()?;
    if requested != tenant {
        return Err(Error::forbidden("the token is scoped to another tenant"));
    }
    Ok(tenant)
}
