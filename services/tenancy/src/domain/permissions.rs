//! The permissions tenancy checks, named once. Identity's role catalogue grants them (owners get
//! `*`); the kernel's `Caller` checks them (`tenant_with`, `platform`, `tenant_or_platform`).
//!
//! Two kinds of rights:
//! - tenant rights count on a token scoped to the tenant the request names;
//! - platform rights (approving, suspending, reading every tenant) count only on a token scoped to
//!   no tenant, so an owner's `*` for its own tenant never reaches another tenant.

/// Tenant rights (on a token scoped to the tenant).
pub const TENANT_DELETE: &str = "tenancy.tenant.delete";
/// Renaming the tenant and setting its default language (owners: no built-in pattern but `*`
/// covers `tenancy.tenant.*`).
pub const TENANT_UPDATE: &str = "tenancy.tenant.update";
pub const INVITATION_CREATE: &str = "tenancy.invitation.create";
pub const MEMBER_READ: &str = "tenancy.member.read";
pub const MEMBER_UPDATE: &str = "tenancy.member.update";
pub const MEMBER_REMOVE: &str = "tenancy.member.remove";
pub const MODULE_MANAGE: &str = "tenancy.module.manage";
pub const FLAG_MANAGE: &str = "tenancy.flag.manage";

/// Service rights: honoured only on a service principal's token (`PrincipalKind::Service`). An
/// owner's `*` covers the name too, so the handler checks the principal's kind as well; no
/// tenant role's pattern other than `*` covers it (the resource is not `invitation`, which
/// admins hold `tenancy.invitation.*` for).
pub const INVITATION_TOKEN_ISSUE: &str = "tenancy.invitation_token.issue";

/// Platform rights (on a token scoped to no tenant).
pub const TENANT_APPROVE: &str = "tenancy.tenant.approve";
pub const TENANT_SUSPEND: &str = "tenancy.tenant.suspend";
pub const TENANT_REACTIVATE: &str = "tenancy.tenant.reactivate";
/// Read any tenant, list every tenant (`all_tenants`), and read any tenant's entitlements (the
/// gateway and services, with a service token).
pub const TENANT_READ_ANY: &str = "tenancy.tenant.read";
