//! The tenancy consumer: keeps tenant states and role bindings, and revokes the sessions that a
//! suspension, a deletion or a member's removal ends. Runs in the kernel's consumer transaction,
//! so each event's effect and its inbox row commit together.

use futures::future::BoxFuture;
use keel_kernel::consumer::{Event, EventHandler};
use keel_kernel::db::{self, Tx};
use keel_kernel::outbox::Outbox;
use keel_kernel::{Error, TenantId, UserId};
use keel_proto::tenancy::v1 as tenancy;

use super::publish::{self, RevokeReason};
use crate::grpc::context::Meta;
use crate::repo::sessions;
use crate::repo::tenancy::{self as repo, TenantState};

pub struct TenancyEvents {
    outbox: Outbox,
}

impl TenancyEvents {
    pub fn new(outbox: Outbox) -> Self {
        TenancyEvents { outbox }
    }

    #[tracing::instrument(skip_all, fields(event_type = %event.envelope.event_type, tenant_id = %event.envelope.tenant_id))]
    async fn apply(&self, tx: &mut Tx, event: &Event) -> Result<(), Error> {
        let version = event.envelope.aggregate_version;
        match event.envelope.event_type.as_str() {
            "tenancy.tenant.created" => {
                let created: tenancy::TenantCreated = event.payload()?;
                let tenant = scope(tx, event, &created.tenant_id).await?;
                let state = match tenancy::TenantState::try_from(created.state) {
                    Ok(tenancy::TenantState::Active) => TenantState::Active,
                    _ => TenantState::PendingApproval,
                };
                repo::apply_tenant_state(tx, tenant, state, version).await?;
            }
            "tenancy.tenant.approved" => {
                let approved: tenancy::TenantApproved = event.payload()?;
                let tenant = scope(tx, event, &approved.tenant_id).await?;
                repo::apply_tenant_state(tx, tenant, TenantState::Active, version).await?;
            }
            "tenancy.tenant.reactivated" => {
                let reactivated: tenancy::TenantReactivated = event.payload()?;
                let tenant = scope(tx, event, &reactivated.tenant_id).await?;
                repo::apply_tenant_state(tx, tenant, TenantState::Active, version).await?;
            }
            "tenancy.tenant.suspended" => {
                let suspended: tenancy::TenantSuspended = event.payload()?;
                let tenant = scope(tx, event, &suspended.tenant_id).await?;
                if repo::apply_tenant_state(tx, tenant, TenantState::Suspended, version).await? {
                    self.revoke(tx, event, tenant, None, RevokeReason::TenantSuspended)
                        .await?;
                }
            }
            "tenancy.tenant.deleted" => {
                let deleted: tenancy::TenantDeleted = event.payload()?;
                let tenant = scope(tx, event, &deleted.tenant_id).await?;
                if repo::apply_tenant_state(tx, tenant, TenantState::Deleted, version).await? {
                    self.revoke(tx, event, tenant, None, RevokeReason::TenantSuspended)
                        .await?;
                }
            }
            "tenancy.member.added" => {
                let added: tenancy::MemberAdded = event.payload()?;
                let tenant = scope(tx, event, &added.tenant_id).await?;
                let user = UserId::parse_field("user_id", &added.user_id)?;
                repo::apply_binding(tx, tenant, user, Some(&added.role), version).await?;
            }
            "tenancy.member.role_changed" => {
                let changed: tenancy::MemberRoleChanged = event.payload()?;
                let tenant = scope(tx, event, &changed.tenant_id).await?;
                let user = UserId::parse_field("user_id", &changed.user_id)?;
                // The new role reaches tokens at the next refresh (access tokens are short-lived).
                repo::apply_binding(tx, tenant, user, Some(&changed.new_role), version).await?;
            }
            "tenancy.member.removed" => {
                let removed: tenancy::MemberRemoved = event.payload()?;
                let tenant = scope(tx, event, &removed.tenant_id).await?;
                let user = UserId::parse_field("user_id", &removed.user_id)?;
                if repo::apply_binding(tx, tenant, user, None, version).await? {
                    self.revoke(tx, event, tenant, Some(user), RevokeReason::MemberRemoved)
                        .await?;
                }
            }
            // Invitations, modules and flags are not identity's concern.
            _ => {}
        }
        Ok(())
    }

    async fn revoke(
        &self,
        tx: &mut Tx,
        event: &Event,
        tenant: TenantId,
        user: Option<UserId>,
        reason: RevokeReason,
    ) -> Result<(), Error> {
        let revoked = sessions::revoke_scoped(tx, tenant, user, reason.as_str()).await?;
        let meta = Meta {
            request_id: event.envelope.correlation_id.clone(),
            ..Meta::default()
        };
        publish::sessions_revoked(
            &self.outbox,
            tx,
            &revoked,
            reason,
            &meta,
            ("system", event.envelope.source.clone()),
        )
        .await
    }
}

impl EventHandler for TenancyEvents {
    fn handle<'a>(&'a self, tx: &'a mut Tx, event: &'a Event) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(tx, event))
    }
}

/// The payload's tenant, which must agree with the envelope's (when it names one); the
/// transaction is scoped to it, so the writes to tenant tables pass their policies.
async fn scope(tx: &mut Tx, event: &Event, payload_tenant: &str) -> Result<TenantId, Error> {
    let tenant = TenantId::parse_field("tenant_id", payload_tenant)?;
    if let Some(envelope_tenant) = event.tenant()?
        && envelope_tenant != tenant
    {
        return Err(Error::invalid(
            "tenant_id",
            "differs between the envelope and the payload",
        ));
    }
    db::set_tenant(tx, tenant).await?;
    Ok(tenant)
}
