//! Subscribing, changing the price, canceling; and the entitlements event each publishes.

use crate::kernel_v2::jobs::{self, NewJob};
use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
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

/// Move the subscription to `new_price` now. The unused part of the old flat price is credited
/// and the rest of the period charged at the new one, to the second; both lines wait for the
/// subscription's next invoice (its period close), so every period still has exactly one
/// invoice. VALIDATION when the new price's currency or interval differs.
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
    let (_, old_price) =
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
    prorate_change(tx, env, &subscription, &old_price, new_price).await?;
    let previous = subscription.price_id;
    subscription.price_id = new_price.id;
    subscription.plan_id = plan.id.clone();
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

/// The credit and charge lines of a mid-period price change, carried to the next invoice.
async fn prorate_change(
    tx: &mut TenantTx,
    env: Env<'_>,
    subscription: &Subscription,
    old: &Price,
    new: &Price,
) -> Result<(), Error> {
    let (start, end) = (
        subscription.current_period_start,
        subscription.current_period_end,
    );
    let now = env.now.clamp(start, end);
    let total = (end - start).num_seconds();
    let remaining = (end - now).num_seconds();
    if remaining <= 0 || total <= 0 {
        return Ok(());
    }
    let currency = old.price.currency;
    let lines = [
        (old, -1i64, "Unused time on"),
        (new, 1i64, "Remaining time on"),
    ];
    for (price, sign, what) in lines {
        if !matches!(price.price.kind, PriceKind::Flat) {
            continue;
        }
        let amount = prorate(price.price.unit_amount, remaining, total)? * sign;
        if amount == 0 {
            continue;
        }
        let line = InvoiceLine {
            kind: LineKind::Proration,
            description: format!(
                "{what} {} ({} of {} seconds at {} per period)",
                price.plan_id,
                remaining,
                total,
                currency.format(price.price.unit_amount)
            ),
            price_id: Some(price.id),
            meter_id: String::new(),
            quantity: 1,
            unit_amount: amount,
            amount,
            period_start: now,
            period_end: end,
        };
        repo::invoices::add_pending_line(tx, subscription.id, &line, env.now).await?;
    }
    Ok(())
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
