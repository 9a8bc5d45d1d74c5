//! Proto <-> domain. Requests become domain values through `TryFrom`, which reports every invalid
//! field at once; domain values become proto messages through `From`.

use chrono::{DateTime, Utc};
use keel_kernel::grpc::timestamp;
use keel_kernel::{Email, Error, TenantId, UserId, Violations};
use keel_proto::tenancy::v1 as pb;

use crate::domain::{
    FeatureFlag, FlagName, Invitation, InvitationState, Membership, Module, ModuleName, NewTenant,
    Role, Slug, Tenant, TenantModule, TenantName, TenantState, parse_locale,
};

/// A state filter: UNSPECIFIED means none.
pub fn state_filter(field: &str, value: i32) -> Result<Option<TenantState>, Error> {
    match pb::TenantState::try_from(value) {
        Ok(pb::TenantState::Unspecified) => Ok(None),
        Ok(pb::TenantState::PendingApproval) => Ok(Some(TenantState::PendingApproval)),
        Ok(pb::TenantState::Active) => Ok(Some(TenantState::Active)),
        Ok(pb::TenantState::Suspended) => Ok(Some(TenantState::Suspended)),
        Ok(pb::TenantState::Deleted) => Ok(Some(TenantState::Deleted)),
        Err(_) => Err(Error::invalid(field, "is not a tenant state")),
    }
}

impl TryFrom<pb::CreateTenantRequest> for NewTenant {
    type Error = Error;
    fn try_from(request: pb::CreateTenantRequest) -> Result<NewTenant, Error> {
        let tenant = request
            .tenant
            .ok_or_else(|| Error::invalid("tenant", "is required"))?;
        let mut violations = Violations::default();
        let name = violations.check(TenantName::parse("tenant.name", &tenant.name));
        let slug = violations.check(Slug::parse("tenant.slug", &tenant.slug));
        let default_locale = violations.check(parse_locale(
            "tenant.default_locale",
            &tenant.default_locale,
        ));
        violations.finish()?;
        match (name, slug, default_locale) {
            (Some(name), Some(slug), Some(default_locale)) => Ok(NewTenant {
                name,
                slug,
                default_locale,
            }),
            _ => Err(Error::internal(anyhow::anyhow!("validated fields missing"))),
        }
    }
}

/// CreateInvitation's fields, validated.
pub struct NewInvitationInput {
    pub tenant: TenantId,
    pub email: Email,
    pub role: Role,
}

impl TryFrom<pb::CreateInvitationRequest> for NewInvitationInput {
    type Error = Error;
    fn try_from(request: pb::CreateInvitationRequest) -> Result<NewInvitationInput, Error> {
        let mut violations = Violations::default();
        let tenant = violations.check(TenantId::parse_field("tenant_id", &request.tenant_id));
        let email = violations.check(Email::parse("email", &request.email));
        let role = violations.check(Role::parse("role", &request.role));
        violations.finish()?;
        match (tenant, email, role) {
            (Some(tenant), Some(email), Some(role)) => Ok(NewInvitationInput {
                tenant,
                email,
                role,
            }),
            _ => Err(Error::internal(anyhow::anyhow!("validated fields missing"))),
        }
    }
}

/// UpdateMember's fields, validated: only `role` may be named in the mask (an empty mask means
/// every updatable field, which is `role`).
pub struct RoleChange {
    pub tenant: TenantId,
    pub user: UserId,
    pub role: Role,
}

impl TryFrom<pb::UpdateMemberRequest> for RoleChange {
    type Error = Error;
    fn try_from(request: pb::UpdateMemberRequest) -> Result<RoleChange, Error> {
        let mut violations = Violations::default();
        let tenant = violations.check(TenantId::parse_field("tenant_id", &request.tenant_id));
        let user = violations.check(UserId::parse_field("user_id", &request.user_id));
        let paths = request
            .update_mask
            .map(|mask| mask.paths)
            .unwrap_or_default();
        if let Some(path) = paths.iter().find(|path| path.as_str() != "role") {
            violations.add(
                "update_mask",
                format!("`{path}` cannot be updated; only `role` can"),
            );
        }
        let role = match request.member {
            Some(member) => violations.check(Role::parse("member.role", &member.role)),
            None => {
                violations.add("member", "is required");
                None
            }
        };
        violations.finish()?;
        match (tenant, user, role) {
            (Some(tenant), Some(user), Some(role)) => Ok(RoleChange { tenant, user, role }),
            _ => Err(Error::internal(anyhow::anyhow!("validated fields missing"))),
        }
    }
}

/// (tenant, module) of EnableModule/DisableModule.
pub fn module_target(tenant: &str, module: &str) -> Result<(TenantId, ModuleName), Error> {
    let mut violations = Violations::default();
    let tenant = violations.check(TenantId::parse_field("tenant_id", tenant));
    let module = violations.check(ModuleName::parse("module", module));
    violations.finish()?;
    tenant
        .zip(module)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("validated fields missing")))
}

/// (tenant, flag) of SetFeatureFlag.
pub fn flag_target(tenant: &str, flag: &str) -> Result<(TenantId, FlagName), Error> {
    let mut violations = Violations::default();
    let tenant = violations.check(TenantId::parse_field("tenant_id", tenant));
    let flag = violations.check(FlagName::parse("flag", flag));
    violations.finish()?;
    tenant
        .zip(flag)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("validated fields missing")))
}

/// (tenant, user) of GetMember/RemoveMember.
pub fn member_target(tenant: &str, user: &str) -> Result<(TenantId, UserId), Error> {
    let mut violations = Violations::default();
    let tenant = violations.check(TenantId::parse_field("tenant_id", tenant));
    let user = violations.check(UserId::parse_field("user_id", user));
    violations.finish()?;
    tenant
        .zip(user)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("validated fields missing")))
}

impl From<&Tenant> for pb::Tenant {
    fn from(tenant: &Tenant) -> pb::Tenant {
        pb::Tenant {
            id: tenant.id.to_string(),
            name: tenant.name.clone(),
            slug: tenant.slug.clone(),
            state: pb::TenantState::from(tenant.state) as i32,
            plan: tenant.plan.clone(),
            created_by: tenant.created_by.to_string(),
            create_time: Some(timestamp(tenant.created_at)),
            update_time: Some(timestamp(tenant.updated_at)),
            default_locale: tenant.default_locale.clone(),
        }
    }
}

impl From<&Membership> for pb::Membership {
    fn from(member: &Membership) -> pb::Membership {
        pb::Membership {
            tenant_id: member.tenant_id.to_string(),
            user_id: member.user_id.to_string(),
            role: member.role.to_string(),
            email: member.email.clone(),
            create_time: Some(timestamp(member.created_at)),
            update_time: Some(timestamp(member.updated_at)),
        }
    }
}

/// An invitation; `token` only in the answer to CreateInvitation.
pub fn invitation(
    invitation: &Invitation,
    token: Option<String>,
    now: DateTime<Utc>,
) -> pb::Invitation {
    let state = match invitation.state(now) {
        InvitationState::Pending => pb::InvitationState::Pending,
        InvitationState::Accepted => pb::InvitationState::Accepted,
        InvitationState::Expired => pb::InvitationState::Expired,
    };
    pb::Invitation {
        id: invitation.id.to_string(),
        tenant_id: invitation.tenant_id.to_string(),
        email: invitation.email.clone(),
        role: invitation.role.to_string(),
        token: token.unwrap_or_default(),
        state: state as i32,
        invited_by: invitation.invited_by.id.clone(),
        create_time: Some(timestamp(invitation.created_at)),
        expire_time: Some(timestamp(invitation.expires_at)),
    }
}

impl From<&Module> for pb::Module {
    fn from(module: &Module) -> pb::Module {
        pb::Module {
            name: module.name.clone(),
            display_name: module.display_name.clone(),
            description: module.description.clone(),
            default_enabled: module.default_enabled,
        }
    }
}

impl From<&TenantModule> for pb::TenantModule {
    fn from(module: &TenantModule) -> pb::TenantModule {
        pb::TenantModule {
            tenant_id: module.tenant_id.to_string(),
            module: module.module.clone(),
            enabled: module.enabled,
            update_time: Some(timestamp(module.updated_at)),
        }
    }
}

impl From<&FeatureFlag> for pb::FeatureFlag {
    fn from(flag: &FeatureFlag) -> pb::FeatureFlag {
        pb::FeatureFlag {
            tenant_id: flag.tenant_id.to_string(),
            name: flag.name.clone(),
            enabled: flag.enabled,
            update_time: Some(timestamp(flag.updated_at)),
        }
    }
}
