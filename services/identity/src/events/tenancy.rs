//! The tenancy consumer: keeps tenant states and role bindings, and revokes the sessions that a
//! suspension, a deletion or a member's removal ends. Runs in the kernel's consumer transaction
//! (scoped to the envelope's tenant), so each event's effect and its inbox row commit together.

use futures::future::BoxFuture;
use keel_kernel::consumer::{Event, EventHandler, EventTx};
use keel_kernel::grpc::RequestMeta;
use keel_kernel::outbox::Outbox;
use keel_kernel::{Actor, Error, TenantId, UserId};
use keel_proto::tenancy::v1 as tenancy;

use super::publish;
use crate::domain::{RevokeReason, TenantState};
use crate::repo::sessions;
use crate::repo::tenancy as repo;

/// The consumer's name and the subjects it reads: every tenancy event.
pub const CONSUMER: &str = "tenancy";
pub const SUBJECTS: &str = "tenancy.>";

/// The tenancy event types identity reacts to; the rest (invitations, modules, flags) are not
/// identity's concern.
pub mod types {
    pub const TENANT_CREATED: &str = "tenancy.tenant.created";
    pub const TENANT_APPROVED: &str = "tenancy.tenant.approved";
    pub const TENANT_REACTIVATED: &str = "tenancy.tenant.reactivated";
    pub const TENANT_SUSPENDED: &str = "tenancy.tenant.suspended";
    pub const TENANT_DELETED: &str = "tenancy.tenant.deleted";
    pub const MEMBER_ADDED: &str = "tenancy.member.added";
    pub const MEMBER_ROLE_CHANGED: &str = "tenancy.member.role_changed";
    pub const MEMBER_REMOVED: &str = "tenancy.member.removed";
}

pub struct TenancyEvents {
    outbox: Outbox,
}

impl TenancyEvents {
    pub fn new(outbox: Outbox) -> Self {
        TenancyEvents { outbox }
    }

    #[tracing::instrument(skip_all, fields(event_type = %event.envelope.event_type, tenant_id = %event.envelope.tenant_id))]
    async fn apply(&self, tx: &mut EventTx, event: &Event) -> Result<(), Error> {
        let version = event.envelope.aggregate_version;
        match event.envelope.event_type.as_str() {
            types::TENANT_CREATED => {
                let created: tenancy::TenantCreated = event.payload()?;
                let tenant = scope(tx, &created.tenant_id)?;
                let state = match tenancy::TenantState::try_from(created.state) {
                    Ok(tenancy::TenantState::Active) => TenantState::Active,
                    _ => TenantState::PendingApproval,
                };
                repo::apply_tenant_state(tx.conn(), tenant, state, version).await?;
            }
            types::TENANT_APPROVED => {
                let approved: tenancy::TenantApproved = event.payload()?;
                let tenant = scope(tx, &approved.tenant_id)?;
                repo::apply_tenant_state(tx.conn(), tenant, TenantState::Active, version).await?;
            }
            types::TENANT_REACTIVATED => {
                let reactivated: tenancy::TenantReactivated = event.payload()?;
                let tenant = scope(tx, &reactivated.tenant_id)?;
                repo::apply_tenant_state(tx.conn(), tenant, TenantState::Active, version).await?;
            }
            types::TENANT_SUSPENDED => {
                let suspended: tenancy::TenantSuspended = event.payload()?;
                let tenant = scope(tx, &suspended.tenant_id)?;
                let state = TenantState::Suspended;
                if repo::apply_tenant_state(tx.conn(), tenant, state, version).await? {
                    self.revoke(tx, event, tenant, None, RevokeReason::TenantSuspended)
                        .await?;
                }
            }
            types::TENANT_DELETED => {
                let deleted: tenancy::TenantDeleted = event.payload()?;
                let tenant = scope(tx, &deleted.tenant_id)?;
                let state = TenantState::Deleted;
                if repo::apply_tenant_state(tx.conn(), tenant, state, version).await? {
                    self.revoke(tx, event, tenant, None, RevokeReason::TenantSuspended)
                        .await?;
                }
            }
            types::MEMBER_ADDED => {
                let added: tenancy::MemberAdded = event.payload()?;
                scope(tx, &added.tenant_id)?;
                let user = UserId::parse_field("user_id", &added.user_id)?;
                repo::apply_binding(tx.tenant()?, user, Some(&added.role), version).await?;
            }
            types::MEMBER_ROLE_CHANGED => {
                let changed: tenancy::MemberRoleChanged = event.payload()?;
                scope(tx, &changed.tenant_id)?;
                let user = UserId::parse_field("user_id", &changed.user_id)?;
                // The new role reaches tokens at the next refresh (access tokens are short-lived).
                let role = Some(changed.new_role.as_str());
                repo::apply_binding(tx.tenant()?, user, role, version).await?;
            }
            types::MEMBER_REMOVED => {
                let removed: tenancy::MemberRemoved = event.payload()?;
                let tenant = scope(tx, &removed.tenant_id)?;
                let user = UserId::parse_field("user_id", &removed.user_id)?;
                if repo::apply_binding(tx.tenant()?, user, None, version).await? {
                    self.revoke(tx, event, tenant, Some(user), RevokeReason::MemberRemoved)
                        .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn revoke(
        &self,
        tx: &mut EventTx,
        event: &Event,
        tenant: TenantId,
        user: Option<UserId>,
        reason: RevokeReason,
    ) -> Result<(), Error> {
        let conn = tx.conn();
        let revoked = sessions::revoke_scoped(conn, tenant, user, reason).await?;
        let meta = RequestMeta {
            request_id: event.envelope.correlation_id.clone(),
            ..RequestMeta::default()
        };
        // The consumer acts on its own, on the word of the event's source.
        let actor = Actor::system(event.envelope.source.clone());
        publish::sessions_revoked(&self.outbox, conn, &revoked, reason, &meta, &actor).await
    }
}

impl EventHandler for TenancyEvents {
    fn handle<'a>(
        &'a self,
        tx: &'a mut EventTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(tx, event))
    }
}

/// The payload's tenant, which must be the one the consumer scoped the transaction to (the
/// envelope's), so the writes to tenant tables pass their policies.
fn scope(tx: &mut EventTx, payload_tenant: &str) -> Result<TenantId, Error> {
    let tenant = TenantId::parse_field("tenant_id", payload_tenant)?;
    if tx.tenant()?.tenant() != tenant {
        return Err(Error::invalid(
            "tenant_id",
            "differs between the envelope and the payload",
        ));
    }
    Ok(tenant)
}
