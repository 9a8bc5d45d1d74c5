//! The events tenancy publishes, built from domain values. Each is written to the outbox in the
//! transaction of the change it reports.
//!
//! Aggregates and versions (consumers drop an event whose version is not above the last one seen):
//! - `tenancy.tenant.*`: aggregate id = tenant id, version = the tenant's lifecycle version.
//! - `tenancy.member.*`: aggregate id = `<tenant id>/<user id>`, version = the tenant's membership
//!   sequence, which increases with every membership change of the tenant, so it keeps increasing
//!   for a member who is removed and later re-added.
//! - `tenancy.module.*`: aggregate id = tenant id, version = the tenant's entitlements version.
//! - `tenancy.invitation.created`: aggregate id = invitation id, version 1.
//!
//! Payloads are built here from domain types (never from the API's messages), so what is
//! published depends on the domain, not on how the API happens to render it. Tenancy consumes
//! billing's entitlements (`billing.rs`): the plan in force decides the tenant's modules.

use keel_kernel::grpc::timestamp;
use keel_kernel::outbox::NewEvent;
use keel_kernel::{Actor, Caller, Error, TenantId, UserId};
use keel_proto::tenancy::v1 as pb;

use crate::domain::{Invitation, Membership, ModuleName, Role, Tenant};

pub mod billing;

pub const TENANT_CREATED: &str = "tenancy.tenant.created";
pub const TENANT_UPDATED: &str = "tenancy.tenant.updated";
pub const TENANT_APPROVED: &str = "tenancy.tenant.approved";
pub const TENANT_SUSPENDED: &str = "tenancy.tenant.suspended";
pub const TENANT_REACTIVATED: &str = "tenancy.tenant.reactivated";
pub const TENANT_DELETED: &str = "tenancy.tenant.deleted";
pub const MEMBER_ADDED: &str = "tenancy.member.added";
pub const MEMBER_ROLE_CHANGED: &str = "tenancy.member.role_changed";
pub const MEMBER_REMOVED: &str = "tenancy.member.removed";
pub const INVITATION_CREATED: &str = "tenancy.invitation.created";
pub const MODULE_ENABLED: &str = "tenancy.module.enabled";
pub const MODULE_DISABLED: &str = "tenancy.module.disabled";

/// Actor and correlation of the request that caused the event.
fn caused_by(event: NewEvent, caller: &Caller) -> NewEvent {
    let event = event.actor(&caller.actor());
    match caller.request_id() {
        "" => event,
        request_id => event.correlation(request_id, request_id),
    }
}

fn tenant_event<M: prost::Name>(
    event_type: &str,
    tenant: &Tenant,
    payload: &M,
    caller: &Caller,
) -> Result<NewEvent, Error> {
    let event = NewEvent::new(event_type, tenant.id, payload)?
        .tenant(tenant.id)
        .version(tenant.version);
    Ok(caused_by(event, caller))
}

pub fn tenant_created(tenant: &Tenant, caller: &Caller) -> Result<NewEvent, Error> {
    let payload = pb::TenantCreated {
        tenant_id: tenant.id.to_string(),
        name: tenant.name.clone(),
        slug: tenant.slug.clone(),
        state: pb::TenantState::from(tenant.state) as i32,
        created_by: tenant.created_by.to_string(),
    };
    tenant_event(TENANT_CREATED, tenant, &payload, caller)
}

/// `tenant` as it is after UpdateTenant, at its new version.
pub fn tenant_updated(tenant: &Tenant, caller: &Caller) -> Result<NewEvent, Error> {
    let payload = pb::TenantUpdated {
        tenant_id: tenant.id.to_string(),
        name: tenant.name.clone(),
        default_locale: tenant.default_locale.clone(),
    };
    tenant_event(TENANT_UPDATED, tenant, &payload, caller)
}

/// `approved_by` is None when the platform approved automatically.
pub fn tenant_approved(
    tenant: &Tenant,
    approved_by: Option<&Actor>,
    caller: &Caller,
) -> Result<NewEvent, Error> {
    let payload = pb::TenantApproved {
        tenant_id: tenant.id.to_string(),
        approved_by: approved_by
            .map(|actor| actor.id.clone())
            .unwrap_or_default(),
    };
    tenant_event(TENANT_APPROVED, tenant, &payload, caller)
}

pub fn tenant_suspended(tenant: &Tenant, caller: &Caller) -> Result<NewEvent, Error> {
    let payload = pb::TenantSuspended {
        tenant_id: tenant.id.to_string(),
        reason: tenant.suspended_reason.clone(),
    };
    tenant_event(TENANT_SUSPENDED, tenant, &payload, caller)
}

pub fn tenant_reactivated(tenant: &Tenant, caller: &Caller) -> Result<NewEvent, Error> {
    let payload = pb::TenantReactivated {
        tenant_id: tenant.id.to_string(),
    };
    tenant_event(TENANT_REACTIVATED, tenant, &payload, caller)
}

pub fn tenant_deleted(tenant: &Tenant, caller: &Caller) -> Result<NewEvent, Error> {
    let payload = pb::TenantDeleted {
        tenant_id: tenant.id.to_string(),
    };
    tenant_event(TENANT_DELETED, tenant, &payload, caller)
}

fn member_event<M: prost::Name>(
    event_type: &str,
    tenant: TenantId,
    user: UserId,
    version: i64,
    payload: &M,
    caller: &Caller,
) -> Result<NewEvent, Error> {
    let event = NewEvent::new(event_type, format!("{tenant}/{user}"), payload)?
        .tenant(tenant)
        .version(version);
    Ok(caused_by(event, caller))
}

pub fn member_added(member: &Membership, version: i64, caller: &Caller) -> Result<NewEvent, Error> {
    let payload = pb::MemberAdded {
        tenant_id: member.tenant_id.to_string(),
        user_id: member.user_id.to_string(),
        role: member.role.to_string(),
    };
    member_event(
        MEMBER_ADDED,
        member.tenant_id,
        member.user_id,
        version,
        &payload,
        caller,
    )
}

pub fn member_role_changed(
    member: &Membership,
    old_role: &Role,
    version: i64,
    caller: &Caller,
) -> Result<NewEvent, Error> {
    let payload = pb::MemberRoleChanged {
        tenant_id: member.tenant_id.to_string(),
        user_id: member.user_id.to_string(),
        old_role: old_role.to_string(),
        new_role: member.role.to_string(),
    };
    member_event(
        MEMBER_ROLE_CHANGED,
        member.tenant_id,
        member.user_id,
        version,
        &payload,
        caller,
    )
}

pub fn member_removed(
    member: &Membership,
    version: i64,
    caller: &Caller,
) -> Result<NewEvent, Error> {
    let payload = pb::MemberRemoved {
        tenant_id: member.tenant_id.to_string(),
        user_id: member.user_id.to_string(),
    };
    member_event(
        MEMBER_REMOVED,
        member.tenant_id,
        member.user_id,
        version,
        &payload,
        caller,
    )
}

/// Carries no token: the stream keeps events for days and every consumer can read them. A
/// notifier asks `IssueInvitationToken` for a token to put in the link.
/// The invitation, with the languages a notifier may write to the invitee in: the inviter's
/// request's (`Accept-Language`) and the tenant's default.
pub fn invitation_created(
    invitation: &Invitation,
    tenant_default_locale: &str,
    caller: &Caller,
) -> Result<NewEvent, Error> {
    let payload = pb::InvitationCreated {
        invitation_id: invitation.id.to_string(),
        tenant_id: invitation.tenant_id.to_string(),
        email: invitation.email.clone(),
        role: invitation.role.to_string(),
        invited_by: invitation.invited_by.id.clone(),
        expire_time: Some(timestamp(invitation.expires_at)),
        locale: caller.meta.preferred_locale.clone().unwrap_or_default(),
        tenant_default_locale: tenant_default_locale.to_owned(),
    };
    let event = NewEvent::new(INVITATION_CREATED, invitation.id, &payload)?
        .tenant(invitation.tenant_id)
        .version(1);
    Ok(caused_by(event, caller))
}

pub fn module_toggled(
    tenant: TenantId,
    module: &ModuleName,
    enabled: bool,
    version: i64,
    caller: &Caller,
) -> Result<NewEvent, Error> {
    Ok(caused_by(
        module_event(tenant, module, enabled, version)?,
        caller,
    ))
}

/// A module turned on or off, with no actor yet (a request's or a consumer's adds it).
fn module_event(
    tenant: TenantId,
    module: &ModuleName,
    enabled: bool,
    version: i64,
) -> Result<NewEvent, Error> {
    let event = if enabled {
        let payload = pb::ModuleEnabled {
            tenant_id: tenant.to_string(),
            module: module.to_string(),
        };
        NewEvent::new(MODULE_ENABLED, tenant, &payload)?
    } else {
        let payload = pb::ModuleDisabled {
            tenant_id: tenant.to_string(),
            module: module.to_string(),
        };
        NewEvent::new(MODULE_DISABLED, tenant, &payload)?
    };
    Ok(event.tenant(tenant).version(version))
}
