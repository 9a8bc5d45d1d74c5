//! Subscriptions: one live (not canceled) subscription per tenant, renewing every period until
//! canceled.

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId};
use keel_proto::billing::v1 as pb;

use super::{BillingInterval, PriceId, SubscriptionId, period};

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum SubscriptionState {
    Trialing,
    Active,
    PastDue,
    Canceled,
}

impl SubscriptionState {
    /// Refuse changes to an ended subscription.
    pub fn require_live(self) -> Result<(), Error> {
        if self == SubscriptionState::Canceled {
            return Err(Error::failed_precondition(
                "the subscription is CANCELED; create a new subscription instead",
            ));
        }
        Ok(())
    }
}

impl From<SubscriptionState> for pb::SubscriptionState {
    fn from(state: SubscriptionState) -> pb::SubscriptionState {
        match state {
            SubscriptionState::Trialing => pb::SubscriptionState::Trialing,
            SubscriptionState::Active => pb::SubscriptionState::Active,
            SubscriptionState::PastDue => pb::SubscriptionState::PastDue,
            SubscriptionState::Canceled => pb::SubscriptionState::Canceled,
        }
    }
}

/// Why a subscription ended (`SubscriptionCanceled.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    Requested,
    TenantDeleted,
    Uncollectible,
    PeriodEnd,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Requested => "requested",
            CancelReason::TenantDeleted => "tenant_deleted",
            CancelReason::Uncollectible => "uncollectible",
            CancelReason::PeriodEnd => "period_end",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub tenant_id: TenantId,
    pub plan_id: String,
    pub price_id: PriceId,
    pub state: SubscriptionState,
    pub interval: BillingInterval,
    /// Where periods are counted from: period `n` starts `n` intervals after it.
    pub anchor: DateTime<Utc>,
    pub period_index: i32,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    /// Since when `price_id` is in force (the period start, or the last price change).
    pub price_since: DateTime<Utc>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Subscription {
    /// The period after the current one, as (index, start, end).
    pub fn next_period(&self) -> (i32, DateTime<Utc>, DateTime<Utc>) {
        let next = u32::try_from(self.period_index + 1).unwrap_or(0);
        (
            self.period_index + 1,
            period::period_start(self.anchor, self.interval, next),
            period::period_start(self.anchor, self.interval, next + 1),
        )
    }
}

/// The key of the job closing a period: one per (subscription, period end), so scheduling it
/// twice is a no-op.
pub fn period_close_key(subscription: SubscriptionId, period_end: DateTime<Utc>) -> String {
    format!("close:{subscription}:{}", period_end.to_rfc3339())
}

impl From<&Subscription> for pb::Subscription {
    fn from(subscription: &Subscription) -> pb::Subscription {
        use keel_kernel::grpc::timestamp;
        pb::Subscription {
            id: subscription.id.to_string(),
            tenant_id: subscription.tenant_id.to_string(),
            plan_id: subscription.plan_id.clone(),
            price_id: subscription.price_id.to_string(),
            state: pb::SubscriptionState::from(subscription.state) as i32,
            current_period_start_time: Some(timestamp(subscription.current_period_start)),
            current_period_end_time: Some(timestamp(subscription.current_period_end)),
            cancel_at_period_end: subscription.cancel_at_period_end,
            create_time: Some(timestamp(subscription.created_at)),
            update_time: Some(timestamp(subscription.updated_at)),
        }
    }
}
