//! The webhooks' own consumers of every source context (durable names `webhooks-<context>`):
//! independent of the people-facing routing, so a tenant's endpoints get every event of the
//! tenant, including those that notify nobody.

use futures::future::BoxFuture;
use keel_kernel::Error;
use keel_kernel::consumer::{Event, EventHandler, EventTx};

use super::{EventFacts, SharedWebhooks, enqueue};

/// The durable consumer names and subject filters, one per source context.
pub const SOURCES: [(&str, &str); 5] = [
    ("webhooks-identity", "identity.>"),
    ("webhooks-tenancy", "tenancy.>"),
    ("webhooks-delivery", "delivery.>"),
    ("webhooks-billing", "billing.>"),
    ("webhooks-marketplace", "marketplace.>"),
];

pub struct TenantEvents {
    pub webhooks: SharedWebhooks,
}

impl TenantEvents {
    async fn apply(&self, tx: &mut EventTx, event: &Event) -> Result<(), Error> {
        if event.tenant()?.is_none() {
            return Ok(()); // platform events belong to no tenant's endpoints
        }
        let facts = EventFacts::of(event)?;
        enqueue(tx.tenant()?, &facts, self.webhooks.clock.now()).await?;
        Ok(())
    }
}

impl EventHandler for TenantEvents {
    fn handle<'a>(
        &'a self,
        tx: &'a mut EventTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(tx, event))
    }
}
