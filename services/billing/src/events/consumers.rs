//! The consumers of other services' events. Each runs in the kernel's consumer transaction
//! (scoped to the envelope's tenant, with the inbox row for the event), so an event's effect
//! happens once however often it is delivered; usage is deduplicated a second time by its
//! idempotency key (the envelope's event id), which also covers a replay from another source.
//!
//! - `tenancy.>`: a created tenant is subscribed to the default plan from the event's time; a
//!   deleted tenant's subscription is canceled; members added and removed are counted as the
//!   `seats` gauge.
//! - `ai.>`: `ai.usage.recorded` becomes `ai.tokens` usage (total tokens).
//! - `marketplace.>`: `marketplace.order.completed` becomes one `marketplace.orders` record.

use std::sync::Arc;

use futures::future::BoxFuture;
use keel_kernel::clock::SharedClock;
use keel_kernel::consumer::{Event, EventHandler, EventTx};
use keel_kernel::grpc::from_timestamp;
use keel_kernel::outbox::Outbox;
use keel_kernel::{Error, TenantId, UserId};
use keel_proto::ai::v1 as ai;
use keel_proto::marketplace::v1 as marketplace;
use keel_proto::tenancy::v1 as tenancy;

use super::Cause;
use crate::domain::{CancelReason, NewUsage};
use crate::ops::{self, Env};
use crate::repo;
use crate::settings::Settings;

pub const TENANCY_CONSUMER: &str = "tenancy";
pub const TENANCY_SUBJECTS: &str = "tenancy.>";
pub const AI_CONSUMER: &str = "ai";
pub const AI_SUBJECTS: &str = "ai.>";
pub const MARKETPLACE_CONSUMER: &str = "marketplace";
pub const MARKETPLACE_SUBJECTS: &str = "marketplace.>";

/// The event types billing reacts to.
pub mod types {
    pub const TENANT_CREATED: &str = "tenancy.tenant.created";
    pub const TENANT_DELETED: &str = "tenancy.tenant.deleted";
    pub const MEMBER_ADDED: &str = "tenancy.member.added";
    pub const MEMBER_REMOVED: &str = "tenancy.member.removed";
    pub const AI_USAGE_RECORDED: &str = "ai.usage.recorded";
    pub const ORDER_COMPLETED: &str = "marketplace.order.completed";
}

/// The meters the consumers record into.
pub const AI_TOKENS: &str = "ai.tokens";
pub const MARKETPLACE_ORDERS: &str = "marketplace.orders";
pub const SEATS: &str = "seats";

/// Every billing consumer: one handler type, registered once per source context.
pub struct Consumers {
    outbox: Outbox,
    settings: Arc<Settings>,
    clock: SharedClock,
}

impl Consumers {
    pub fn new(outbox: Outbox, settings: Arc<Settings>, clock: SharedClock) -> Self {
        Consumers {
            outbox,
            settings,
            clock,
        }
    }

    fn env(&self) -> Env<'_> {
        Env {
            outbox: &self.outbox,
            settings: &self.settings,
            now: self.clock.now(),
        }
    }

    #[tracing::instrument(skip_all, fields(event_type = %event.envelope.event_type, tenant_id = %event.envelope.tenant_id))]
    async fn apply(&self, tx: &mut EventTx, event: &Event) -> Result<(), Error> {
        let cause = Cause::system("billing.consumer", &event.envelope.event_id);
        let occurred = match &event.envelope.occurred_at {
            Some(at) => from_timestamp("occurred_at", at)?,
            None => self.clock.now(),
        };
        match event.envelope.event_type.as_str() {
            types::TENANT_CREATED => {
                let created: tenancy::TenantCreated = event.payload()?;
                same_tenant(tx, &created.tenant_id)?;
                let tx = tx.tenant()?;
                // The one-live-subscription rule makes a replay (or a tenant an admin already
                // subscribed) a no-op.
                if repo::subscriptions::live(tx).await?.is_some() {
                    return Ok(());
                }
                let env = self.env();
                let plan = ops::subscriptions::default_plan(tx, env).await?;
                let price = plan
                    .prices
                    .iter()
                    .find(|p| p.is_flat())
                    .cloned()
                    .ok_or_else(|| {
                        Error::internal(anyhow::anyhow!("default plan without flat price"))
                    })?;
                ops::subscriptions::create(tx, env, &plan, &price, occurred, &cause).await?;
            }
            types::TENANT_DELETED => {
                let deleted: tenancy::TenantDeleted = event.payload()?;
                same_tenant(tx, &deleted.tenant_id)?;
                let tx = tx.tenant()?;
                if let Some(subscription) = repo::subscriptions::lock_live(tx).await? {
                    let env = self.env();
                    ops::subscriptions::cancel(
                        tx,
                        env,
                        subscription,
                        true,
                        CancelReason::TenantDeleted,
                        &cause,
                    )
                    .await?;
                }
            }
            types::MEMBER_ADDED | types::MEMBER_REMOVED => {
                let (tenant, user) = if event.envelope.event_type == types::MEMBER_ADDED {
                    let added: tenancy::MemberAdded = event.payload()?;
                    (added.tenant_id, added.user_id)
                } else {
                    let removed: tenancy::MemberRemoved = event.payload()?;
                    (removed.tenant_id, removed.user_id)
                };
                same_tenant(tx, &tenant)?;
                let user = UserId::parse_field("user_id", &user)?;
                let tx = tx.tenant()?;
                if event.envelope.event_type == types::MEMBER_ADDED {
                    repo::tenants::add_member(tx, user).await?;
                } else {
                    repo::tenants::remove_member(tx, user).await?;
                }
                let seats = repo::tenants::member_count(tx).await?;
                let usage = NewUsage {
                    meter_id: SEATS.into(),
                    quantity: seats,
                    occur_time: occurred,
                    idempotency_key: event.envelope.event_id.clone(),
                };
                ops::usage::record(tx, &self.settings, &usage, "meter_id").await?;
            }
            types::AI_USAGE_RECORDED => {
                let recorded: ai::UsageRecorded = event.payload()?;
                let record = recorded
                    .record
                    .ok_or_else(|| Error::invalid("record", "is required"))?;
                let tokens = record.usage.map_or(0, |u| u.total_tokens);
                let occur_time = match &record.create_time {
                    Some(at) => from_timestamp("record.create_time", at)?,
                    None => occurred,
                };
                let usage = NewUsage {
                    meter_id: AI_TOKENS.into(),
                    quantity: tokens.max(0),
                    occur_time,
                    idempotency_key: event.envelope.event_id.clone(),
                };
                ops::usage::record(tx.tenant()?, &self.settings, &usage, "meter_id").await?;
            }
            types::ORDER_COMPLETED => {
                let completed: marketplace::OrderCompleted = event.payload()?;
                let occur_time = match &completed.complete_time {
                    Some(at) => from_timestamp("complete_time", at)?,
                    None => occurred,
                };
                let usage = NewUsage {
                    meter_id: MARKETPLACE_ORDERS.into(),
                    quantity: 1,
                    occur_time,
                    idempotency_key: event.envelope.event_id.clone(),
                };
                ops::usage::record(tx.tenant()?, &self.settings, &usage, "meter_id").await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The payload's tenant must be the envelope's (the transaction's): VALIDATION otherwise, so a
/// malformed event is dead-lettered instead of acting on the wrong tenant.
fn same_tenant(tx: &mut EventTx, payload_tenant: &str) -> Result<(), Error> {
    let tenant = TenantId::parse_field("tenant_id", payload_tenant)?;
    if tx.tenant()?.tenant() != tenant {
        return Err(Error::invalid(
            "tenant_id",
            "the payload's tenant is not the envelope's",
        ));
    }
    Ok(())
}

impl EventHandler for Consumers {
    fn handle<'a>(
        &'a self,
        tx: &'a mut EventTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(tx, event))
    }
}
