//! The billing consumer: the tenant's plan (from `billing.entitlements.changed`) picks the
//! commission rule of its orders. Billing's `version` increases with every change for the
//! tenant; an event not newer than the stored one (a redelivery after a newer change) changes
//! nothing.

use futures::future::BoxFuture;
use keel_kernel::Error;
use keel_kernel::consumer::{Event, EventHandler, EventTx};
use keel_proto::billing::v1 as billing;

use crate::repo;

/// The consumer's name and the subjects it reads.
pub const CONSUMER: &str = "billing";
pub const SUBJECTS: &str = "billing.entitlements.>";
pub const ENTITLEMENTS_CHANGED: &str = "billing.entitlements.changed";

pub struct BillingEvents;

impl BillingEvents {
    #[tracing::instrument(skip_all, fields(tenant_id = %event.envelope.tenant_id))]
    async fn apply(&self, tx: &mut EventTx, event: &Event) -> Result<(), Error> {
        if event.envelope.event_type != ENTITLEMENTS_CHANGED {
            return Ok(());
        }
        let changed: billing::EntitlementsChanged = event.payload()?;
        if repo::plans::apply(tx.tenant()?, &changed.plan_id, changed.version).await? {
            tracing::info!(plan = %changed.plan_id, "tenant plan recorded");
        } else {
            tracing::debug!(version = changed.version, "stale entitlements; ignored");
        }
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
