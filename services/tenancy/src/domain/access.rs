//! Who may do what: the permissions tenancy checks, and the caller's context built once per
//! request from the verified token.
//!
//! Two kinds of rights meet here:
//! - tenant rights, checked on a tenant-scoped token (`tid`) whose tenant must be the one the
//!   request names;
//! - platform rights (approving, suspending, listing every tenant), which count only on a token
//!   scoped to no tenant. A tenant owner's token carries `*` for its own tenant; without this rule
//!   that wildcard would let any owner approve or suspend every other tenant.

use keel_kernel::auth::{Claims, PrincipalKind};
use keel_kernel::{Error, TenantId, UserId};
use keel_proto::events::v1::actor;

/// Permission names tenancy checks. Identity's role catalogue grants them (owners get `*`).
pub mod perms {
    /// Tenant rights (on a token scoped to the tenant).
    pub const TENANT_DELETE: &str = "tenancy.tenant.delete";
    pub const INVITATION_CREATE: &str = "tenancy.invitation.create";
    pub const MEMBER_READ: &str = "tenancy.member.read";
    pub const MEMBER_UPDATE: &str = "tenancy.member.update";
    pub const MEMBER_REMOVE: &str = "tenancy.member.remove";
    pub const MODULE_MANAGE: &str = "tenancy.module.manage";
    pub const FLAG_MANAGE: &str = "tenancy.flag.manage";

    /// Platform rights (on a token scoped to no tenant).
    pub const TENANT_APPROVE: &str = "tenancy.tenant.approve";
    pub const TENANT_SUSPEND: &str = "tenancy.tenant.suspend";
    pub const TENANT_REACTIVATE: &str = "tenancy.tenant.reactivate";
    /// Read any tenant, list every tenant (`all_tenants`), and read any tenant's entitlements
    /// (the gateway and services, with a service token).
    pub const TENANT_READ_ANY: &str = "tenancy.tenant.read";
}

/// The verified caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: Claims,
    /// The request id, used as the correlation id of the events the request causes.
    pub request_id: Option<String>,
}

impl Caller {
    pub fn from_request<T>(request: &tonic::Request<T>) -> Result<Caller, Error> {
        Ok(Caller {
            claims: keel_kernel::auth::claims(request)?.clone(),
            request_id: keel_kernel::server::request_id(request).map(|id| id.as_str().to_owned()),
        })
    }

    /// The calling user; API keys and services act for no user.
    pub fn user(&self) -> Result<UserId, Error> {
        self.claims.user_id()
    }

    /// The tenant this request may act on: the token's, which must be the one the request names.
    pub fn tenant(&self, requested: TenantId) -> Result<TenantId, Error> {
        let tenant = self.claims.tenant()?;
        if tenant != requested {
            return Err(Error::forbidden(
                "the token is scoped to another tenant than the request's tenant_id",
            ));
        }
        Ok(tenant)
    }

    /// [`Self::tenant`], then the tenant permission `permission`.
    pub fn tenant_with(&self, requested: TenantId, permission: &str) -> Result<TenantId, Error> {
        let tenant = self.tenant(requested)?;
        self.claims.require(permission)?;
        Ok(tenant)
    }

    /// Whether this is a platform principal holding `permission` (see the module docs).
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

    /// The tenant a read may see: the token's own tenant, or any tenant for a platform reader.
    pub fn tenant_or_platform(
        &self,
        requested: TenantId,
        permission: &str,
    ) -> Result<TenantId, Error> {
        if self.claims.tid.is_none() && self.is_platform(permission) {
            return Ok(requested);
        }
        self.tenant(requested)
    }

    /// The events' actor: who caused the change.
    pub fn actor(&self) -> (actor::Kind, String) {
        let kind = match self.claims.kind {
            PrincipalKind::User => actor::Kind::User,
            PrincipalKind::ApiKey => actor::Kind::ApiKey,
            PrincipalKind::Service => actor::Kind::Service,
        };
        (kind, self.claims.sub.clone())
    }
}
