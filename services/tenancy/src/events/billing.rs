//! The billing consumer: the plan in force decides which modules a tenant has. Billing publishes
//! `billing.entitlements.changed` whenever a tenant's plan changes (its first subscription, an
//! upgrade, a cancellation falling back to the default plan); tenancy records the plan and turns
//! each catalogue module on or off to match, publishing `tenancy.module.*` for each change so the
//! edge gateway's entitlement cache and other consumers follow.
//!
//! Billing's `version` increases with every change for the tenant; an event not newer than the
//! last applied one (a redelivery after a newer change) changes nothing.

use futures::future::BoxFuture;
use keel_kernel::consumer::{Event, EventHandler, EventTx};
use keel_kernel::outbox::Outbox;
use keel_kernel::{Actor, Error};
use keel_proto::billing::v1 as billing;

use crate::domain::ModuleName;
use crate::repo;

/// The consumer's name and the subjects it reads.
pub const CONSUMER: &str = "billing";
pub const SUBJECTS: &str = "billing.entitlements.>";
pub const ENTITLEMENTS_CHANGED: &str = "billing.entitlements.changed";

pub struct BillingEvents {
    outbox: Outbox,
}

impl BillingEvents {
    pub fn new(outbox: Outbox) -> Self {
        BillingEvents { outbox }
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %event.envelope.tenant_id))]
    async fn apply(&self, tx: &mut EventTx, event: &Event) -> Result<(), Error> {
        if event.envelope.event_type != ENTITLEMENTS_CHANGED {
            return Ok(());
        }
        let changed: billing::EntitlementsChanged = event.payload()?;
        let tx = tx.tenant()?;
        let tenant = match repo::tenants::lock(tx).await {
            Ok(tenant) => tenant,
            // Billing only knows tenants tenancy created; one that is gone has nothing to change.
            Err(err) if err.code() == keel_kernel::ErrorCode::NotFound => {
                tracing::warn!("entitlements for an unknown tenant; ignored");
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        if !repo::tenants::apply_plan(tx, &changed.plan_id, changed.version).await? {
            tracing::debug!(version = changed.version, "stale entitlements; ignored");
            return Ok(());
        }
        // The plan is part of the entitlements the gateway caches by version.
        repo::tenants::bump_entitlements(tx).await?;
        let actor = Actor::system(event.envelope.source.clone());
        let catalogue = repo::modules::catalogue(tx, None, i64::from(i32::MAX)).await?;
        for entry in catalogue {
            let module = ModuleName::parse("module", &entry.name)?;
            let included = changed.modules.contains(&entry.name);
            let (_, toggled) = repo::modules::set(tx, &module, included).await?;
            if toggled {
                let version = repo::tenants::bump_entitlements(tx).await?;
                let toggled = super::module_event(tenant.id, &module, included, version)?
                    .actor(&actor)
                    .correlation(&event.envelope.correlation_id, &event.envelope.event_id);
                self.outbox.enqueue(tx, toggled).await?;
            }
        }
        tracing::info!(plan = %changed.plan_id, modules = ?changed.modules, "plan applied");
        Ok(())
    }
}

impl EventHandler for BillingEvents {
    fn handle<'a>(
        &'a self,
        tx: &'a mut EventTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(tx, event))
    }
}
