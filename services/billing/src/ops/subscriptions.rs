//! Subscribing, changing the price, canceling; and the entitlements event each publishes.

use chrono::{DateTime, SubsecRound, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::jobs::{self, NewJob};
use keel_kernel::{Error, TenantId};
use serde::{Deserialize, Serialize};

use super::{Env, PERIOD_CLOSE_JOB};
use crate::domain::invoice::prorate;
use crate::domain::subscription::period_close_key;
use crate::domain::{
    CancelReason, InvoiceLine, LineKind, Plan, Price, PriceKind, Subscription, SubscriptionId,
    SubscriptionState, period,
};
use crate::events::{self, Cause};
use crate::repo;

/// The payload of a period-close job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeriodClose {
    pub subscription_id: SubscriptionId,
    pub period_end: DateTime<Utc>,
}

/// Schedule the close of the subscription's current period (idempotent on its key).
pub async fn schedule_close(tx: &mut TenantTx, subscription: &Subscription) -> Result<(), Error> {
    let job = NewJob::new(
        PERIOD_CLOSE_JOB,
        period_close_key(subscription.id, subscription.current_period_end),
        subscription.current_period_end,
    )
    .tenant(subscription.tenant_id)
    .payload(&PeriodClose {
        subscription_id: subscription.id,
        period_end: subscription.current_period_end,
    })?;
    jobs::schedule(tx, job).await?;
    Ok(())
}

/// A plan and one of its prices, checked to be something a subscription can subscribe to: a
/// flat price.
pub async fn subscribable_price(
    tx: &mut TenantTx,
    price_id: crate::domain::PriceId,
    field: &str,
) -> Result<(Plan, Price), Error> {
    let price = repo::catalogue::get_price(tx, price_id)
        .await?
        .ok_or_else(|| Error::invalid(field, format!("price {price_id} does not exist")))?;
    if !price.is_flat() {
        return Err(Error::invalid(
            field,
            "is a usage price; subscribe to the plan's flat price (its usage prices come with it)",
        ));
    }
    let plan = repo::catalogue::get_plan(tx, &price.plan_id)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("price without plan {}", price.plan_id)))?;
    Ok((plan, price))
}

/// Publish what `plan` grants the transaction's tenant from now on.
pub async fn publish_entitlements(
    tx: &mut TenantTx,
    env: Env<'_>,
    plan: &Plan,
    period: (DateTime<Utc>, DateTime<Utc>),
    cause: &Cause,
) -> Result<(), Error> {
    let tenant: TenantId = tx.tenant();
    let version = repo::tenants::next_entitlements_version(tx).await?;
    env.outbox
        .enqueue(
            tx,
            events::entitlements_changed(tenant, plan, period, version, cause)?,
        )
        .await?;
    Ok(())
}

/// The default plan, what a tenant without a live subscription is entitled to.
pub async fn default_plan(tx: &mut TenantTx, env: Env<'_>) -> Result<Plan, Error> {
    repo::catalogue::get_plan(tx, &env.settings.default_plan)
        .await?
        .ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "default plan {} is not in the catalogue",
                env.settings.default_plan
            ))
        })
}

/// Subscribe the transaction's tenant to `price` from `start`. FAILED_PRECONDITION when it
/// already has a live subscription.
pub async fn create(
    tx: &mut TenantTx,
    env: Env<'_>,
    plan: &Plan,
    price: &Price,
    start: DateTime<Utc>,
    cause: &Cause,
) -> Result<Subscription, Error> {
    if repo::subscriptions::lock_live(tx).await?.is_some() {
        return Err(Error::failed_precondition(
            "the tenant already has a live subscription; change it with UpdateSubscription",
        ));
    }
    // Anchored on a whole second: periods, job keys and stored times then agree exactly.
    let start = start.trunc_subsecs(0);
    let interval = price.price.interval;
    let end = period::period_start(start, interval, 1);
    let subscription =
        repo::subscriptions::insert(tx, &plan.id, price.id, interval, start, end, env.now).await?;
    schedule_close(tx, &subscription).await?;
    env.outbox
        .enqueue(tx, events::subscription_created(&subscription, cause)?)
        .await?;
    publish_entitlements(tx, env, plan, (start, end), cause).await?;
    tracing::info!(subscription_id = %subscription.id, plan_id = %plan.id, "subscription created");
    Ok(subscription)
}

/// Move the subscription to `new_price` now. Billing is in arrears and to the second: the old
/// price's flat fee for the time it was in force this period becomes a pending line of the next
/// invoice, and the period close charges the new price from now to the period's end. A plan
/// changed several times in a day (Kill Bill #877) is charged each price for its own seconds,
/// never a full period twice. VALIDATION when the new price's currency or interval differs.
pub async fn change_price(
    tx: &mut TenantTx,
    env: Env<'_>,
    mut subscription: Subscription,
    plan: &Plan,
    new_price: &Price,
    cause: &Cause,
) -> Result<Subscription, Error> {
    subscription.state.require_live()?;
    if new_price.id == subscription.price_id {
        return Ok(subscription);
    }
    let (old_plan, old_price) =
        subscribable_price(tx, subscription.price_id, "subscription.price_id").await?;
    if old_price.price.currency != new_price.price.currency
        || old_price.price.interval != new_price.price.interval
    {
        return Err(Error::invalid(
            "subscription.price_id",
            format!(
                "must be in the subscription's currency and interval ({}, {:?})",
                old_price.price.currency, old_price.price.interval
            ),
        ));
    }
    let now = env.now.clamp(
        subscription.current_period_start,
        subscription.current_period_end,
    );
    close_price_segment(tx, env, &subscription, &old_plan, &old_price, now).await?;
    let previous = subscription.price_id;
    subscription.price_id = new_price.id;
    subscription.plan_id = plan.id.clone();
    subscription.price_since = now;
    let subscription = repo::subscriptions::save(tx, &subscription, env.now).await?;
    env.outbox
        .enqueue(
            tx,
            events::subscription_changed(&subscription, previous, cause)?,
        )
        .await?;
    let period = (
        subscription.current_period_start,
        subscription.current_period_end,
    );
    publish_entitlements(tx, env, plan, period, cause).await?;
    Ok(subscription)
}

/// The flat fee of `price` for [price_since, until), prorated to the second against the whole
/// period, as a line waiting for the subscription's next invoice.
async fn close_price_segment(
    tx: &mut TenantTx,
    env: Env<'_>,
    subscription: &Subscription,
    plan: &Plan,
    price: &Price,
    until: DateTime<Utc>,
) -> Result<(), Error> {
    let from = subscription.price_since;
    let full = (subscription.current_period_end - subscription.current_period_start).num_seconds();
    let used = (until - from).num_seconds();
    if used <= 0 || full <= 0 || !matches!(price.price.kind, PriceKind::Flat) {
        return Ok(());
    }
    let amount = prorate(price.price.unit_amount, used, full)?;
    let line = InvoiceLine {
        kind: LineKind::Proration,
        description: format!(
            "{} ({:?}), {used} of {full} seconds at {} per period",
            plan.display_name,
            price.price.interval,
            price.price.currency.format(price.price.unit_amount)
        ),
        price_id: Some(price.id),
        meter_id: String::new(),
        quantity: 1,
        unit_amount: amount,
        amount,
        period_start: from,
        period_end: until,
    };
    repo::invoices::add_pending_line(tx, subscription.id, &line, env.now).await
}

/// Cancel at the end of the current period (`cancel_at_period_end`) or now. Canceling now
/// issues a final invoice for the period so far (flat prices prorated to the second, usage so
/// far, pending prorations) and publishes the default plan's entitlements.
pub async fn cancel(
    tx: &mut TenantTx,
    env: Env<'_>,
    mut subscription: Subscription,
    immediately: bool,
    reason: CancelReason,
    cause: &Cause,
) -> Result<Subscription, Error> {
    subscription.state.require_live()?;
    if !immediately {
        if subscription.cancel_at_period_end {
            return Ok(subscription);
        }
        subscription.cancel_at_period_end = true;
        let subscription = repo::subscriptions::save(tx, &subscription, env.now).await?;
        env.outbox
            .enqueue(
                tx,
                events::subscription_changed(&subscription, subscription.price_id, cause)?,
            )
            .await?;
        return Ok(subscription);
    }
    let end = env.now.max(subscription.current_period_start);
    if end < subscription.current_period_end {
        super::invoicing::final_invoice(tx, env, &subscription, end, cause).await?;
    }
    subscription.state = SubscriptionState::Canceled;
    subscription.canceled_at = Some(env.now);
    let subscription = repo::subscriptions::save(tx, &subscription, env.now).await?;
    ended(tx, env, &subscription, reason, cause).await?;
    Ok(subscription)
}

/// Events of a subscription that just ended: canceled, and the default plan's entitlements.
pub async fn ended(
    tx: &mut TenantTx,
    env: Env<'_>,
    subscription: &Subscription,
    reason: CancelReason,
    cause: &Cause,
) -> Result<(), Error> {
    env.outbox
        .enqueue(
            tx,
            events::subscription_canceled(subscription, reason, cause)?,
        )
        .await?;
    let plan = default_plan(tx, env).await?;
    let at = subscription.canceled_at.unwrap_or(env.now);
    let interval = plan
        .prices
        .iter()
        .find(|p| p.is_flat())
        .map_or(crate::domain::BillingInterval::Month, |p| p.price.interval);
    publish_entitlements(
        tx,
        env,
        &plan,
        (at, period::period_start(at, interval, 1)),
        cause,
    )
    .await?;
    tracing::info!(subscription_id = %subscription.id, reason = reason.as_str(), "subscription canceled");
    Ok(())
}
