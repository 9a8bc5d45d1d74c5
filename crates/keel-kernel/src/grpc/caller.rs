//! The verified caller of one request and the request's own facts (id, client address, agent).

use crate::actor::Actor;
use crate::auth::Claims;
use crate::error::Error;
use crate::ids::{TenantId, UserId};

/// Facts about a request that do not depend on who sent it: what public methods (login,
/// register) have to go on, and what every audit row records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// The request id the server's first layer assigned (or accepted from the gateway); also the
    /// correlation id of the events the request causes.
    pub request_id: String,
    /// The client's address as the edge gateway resolved it (see [`RequestMeta::of`]), else the
    /// peer address.
    pub client_ip: String,
    pub user_agent: String,
    /// The client's `Idempotency-Key` header, forwarded by the edge gateway
    /// ([`crate::idempotency`]); a request's own `request_id` field takes precedence.
    pub idempotency_key: Option<String>,
}

const MAX_USER_AGENT_LEN: usize = 256;

impl RequestMeta {
    /// The metadata carrying the client's address as the edge gateway resolved it. The gateway
    /// sets it on every call and strips it from clients; nothing else a client sends
    /// (`X-Forwarded-For`, `X-Real-IP`) is believed, since the client writes those.
    pub const CLIENT_IP_HEADER: &'static str = "x-keel-client-ip";

    pub fn of<T>(request: &tonic::Request<T>) -> RequestMeta {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        // Parsed, so whatever reaches audit rows and lockout keys is an address and nothing else.
        let client_ip = header(Self::CLIENT_IP_HEADER)
            .and_then(|value| value.parse::<std::net::IpAddr>().ok())
            .or_else(|| request.remote_addr().map(|addr| addr.ip()))
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        RequestMeta {
            request_id: crate::server::request_id(request)
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            client_ip,
            user_agent: header("user-agent")
                .map(|agent| agent.chars().take(MAX_USER_AGENT_LEN).collect())
                .unwrap_or_default(),
            idempotency_key: header(crate::idempotency::IDEMPOTENCY_KEY_HEADER).map(str::to_owned),
        }
    }
}

/// The verified caller of one request: the token's claims (never a client-supplied header) and
/// the request's facts. Built once at the top of a handler; every check goes through it.
///
/// Two kinds of rights meet here:
/// - tenant rights, on a tenant-scoped token (`tid`) whose tenant must be the one the request
///   names ([`Caller::tenant`], [`Caller::tenant_with`]);
/// - platform rights (approving tenants, reading any tenant), which count only on a token scoped
///   to no tenant ([`Caller::platform`]). A tenant owner's token carries `*` for its own tenant;
///   without this rule that wildcard would grant platform rights to every owner.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: Claims,
    pub meta: RequestMeta,
}

impl Caller {
    /// The caller of `request`, or AUTHN when the auth layer put no verified claims on it.
    pub fn from_request<T>(request: &tonic::Request<T>) -> Result<Caller, Error> {
        Ok(Caller {
            claims: crate::auth::claims(request)?.clone(),
            meta: RequestMeta::of(request),
        })
    }

    /// The calling user; API keys and services act for no user (AUTHZ).
    pub fn user(&self) -> Result<UserId, Error> {
        self.claims.user_id()
    }

    /// Who is acting, for audit rows and event envelopes.
    pub fn actor(&self) -> Actor {
        Actor::of(&self.claims)
    }

    /// The request id, used as the correlation id of the events this request causes.
    pub fn request_id(&self) -> &str {
        &self.meta.request_id
    }

    /// AUTHZ naming the permission unless the token grants it.
    pub fn require(&self, permission: &str) -> Result<(), Error> {
        self.claims.require(permission)
    }

    /// The tenant this request may act on: the token's, which must be the one the request names.
    /// The tenant always comes from the verified token; the request field only has to agree.
    pub fn tenant(&self, requested: TenantId) -> Result<TenantId, Error> {
        let tenant = self.claims.tenant()?;
        if tenant != requested {
            return Err(Error::forbidden(
                "the token is scoped to another tenant than the request's tenant_id",
            ));
        }
        Ok(tenant)
    }

    /// [`Self::tenant`] for a request field still in its wire form (parsed, naming `field`).
    pub fn tenant_field(&self, field: &str, requested: &str) -> Result<TenantId, Error> {
        self.tenant(TenantId::parse_field(field, requested)?)
    }

    /// [`Self::tenant`], then the tenant permission `permission`.
    pub fn tenant_with(&self, requested: TenantId, permission: &str) -> Result<TenantId, Error> {
        let tenant = self.tenant(requested)?;
        self.claims.require(permission)?;
        Ok(tenant)
    }

    /// Whether this is a platform principal holding `permission` (a token scoped to no tenant).
    pub fn is_platform(&self, permission: &str) -> bool {
        self.claims.tid.is_none() && self.claims.has_permission(permission)
    }

    /// AUTHZ unless this is a platform principal holding `permission`.
    pub fn platform(&self, permission: &str) -> Result<(), Error> {
        if self.is_platform(permission) {
            Ok(())
        } else if self.claims.tid.is_some() {
            Err(Error::forbidden(format!(
                "{permission} is a platform permission; it needs a token not scoped to a tenant"
            )))
        } else {
            Err(Error::forbidden(format!("missing permission {permission}")))
        }
    }

    /// The tenant a read may see: the token's own tenant, or any tenant for a platform principal
    /// holding `permission`.
    pub fn tenant_or_platform(
        &self,
        requested: TenantId,
        permission: &str,
    ) -> Result<TenantId, Error> {
        if self.is_platform(permission) {
            return Ok(requested);
        }
        self.tenant(requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, &'static str)]) -> tonic::Request<()> {
        let mut request = tonic::Request::new(());
        for (name, value) in headers {
            request.metadata_mut().insert(*name, value.parse().unwrap());
        }
        request
    }

    #[test]
    fn a_client_cannot_claim_an_address_with_x_forwarded_for_or_x_real_ip() {
        let meta = RequestMeta::of(&request(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "5.6.7.8"),
        ]));
        assert_eq!(
            meta.client_ip, "",
            "no peer in a unit test, and no header believed"
        );
    }

    #[test]
    fn the_gateways_resolved_address_is_the_client_ip() {
        let meta = RequestMeta::of(&request(&[
            ("x-forwarded-for", "1.2.3.4"),
            (RequestMeta::CLIENT_IP_HEADER, "203.0.113.9"),
        ]));
        assert_eq!(meta.client_ip, "203.0.113.9");
    }

    #[test]
    fn a_gateway_header_that_is_not_an_address_is_ignored() {
        let meta = RequestMeta::of(&request(&[(
            RequestMeta::CLIENT_IP_HEADER,
            "evil, 1.2.3.4",
        )]));
        assert_eq!(meta.client_ip, "");
    }
}
