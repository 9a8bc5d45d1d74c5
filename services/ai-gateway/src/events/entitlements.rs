//! The billing consumer: `billing.entitlements.changed` sets the tenant's token limit and period.
//! A plan without `ai.tokens.monthly` grants no tokens (billing's rule: a missing feature is not
//! granted); -1 is unlimited. Stale versions are ignored (the quota row keeps the newest).

use futures::future::BoxFuture;
use keel_kernel::consumer::{Event, EventHandler, EventTx};
use keel_kernel::grpc::from_timestamp;
use keel_kernel::{Error, TenantId};
use keel_proto::billing::v1 as billing;

use crate::domain::Period;
use crate::repo;

pub const CONSUMER: &str = "billing";
pub const SUBJECTS: &str = "billing.entitlements.>";
pub const ENTITLEMENTS_CHANGED: &str = "billing.entitlements.changed";
/// The plan limit the gateway meters against.
pub const TOKENS_LIMIT: &str = "ai.tokens.monthly";

pub struct Entitlements {
    pub clock: keel_kernel::clock::SharedClock,
}

impl Entitlements {
    async fn apply(&self, tx: &mut EventTx, event: &Event) -> Result<(), Error> {
        if event.envelope.event_type != ENTITLEMENTS_CHANGED {
            return Ok(());
        }
        let changed: billing::EntitlementsChanged = event.payload()?;
        let tenant = TenantId::parse_field("tenant_id", &changed.tenant_id)?;
        let tx = tx.tenant()?;
        if tx.tenant() != tenant {
            return Err(Error::invalid(
                "tenant_id",
                "differs from the envelope's tenant",
            ));
        }
        let limit = changed
            .limits
            .get(TOKENS_LIMIT)
            .copied()
            .unwrap_or(0)
            .max(-1);
        let start = changed
            .period_start_time
            .as_ref()
            .map(|t| from_timestamp("period_start_time", t))
            .transpose()?;
        let end = changed
            .period_end_time
            .as_ref()
            .map(|t| from_timestamp("period_end_time", t))
            .transpose()?;
        let now = self.clock.now();
        let period = match (start, end) {
            (Some(start), Some(end)) if end > start => Period { start, end },
            _ => Period::month_of(now),
        };
        let version = changed.version.max(event.envelope.aggregate_version);
        let applied = repo::quotas::apply_entitlements(tx, limit, period, version, now).await?;
        tracing::info!(%tenant, limit, version, applied, "entitlements applied to the token quota");
        Ok(())
    }
}

impl EventHandler for Entitlements {
    fn handle<'a>(
        &'a self,
        tx: &'a mut EventTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(tx, event))
    }
}
