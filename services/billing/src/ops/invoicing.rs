//! Period close, invoices, payments and dunning.

use chrono::{DateTime, Utc};
use keel_kernel::Error;
use keel_kernel::db::TenantTx;
use keel_kernel::jobs::{self, NewJob};
use serde::{Deserialize, Serialize};

use super::subscriptions::{self, PeriodClose};
use super::{DUNNING_JOB, Env};
use crate::domain::invoice::{invoice_number, numbering_year, prorate};
use crate::domain::{
    Aggregation, CancelReason, Invoice, InvoiceId, InvoiceLine, InvoiceState, LineKind, Plan,
    PriceKind, Subscription, SubscriptionId, SubscriptionState, Totals,
};
use crate::events::{self, Cause};
use crate::repo;

/// The payload of a dunning job: give up on the invoice if it is still unpaid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dunning {
    pub invoice_id: InvoiceId,
    pub subscription_id: SubscriptionId,
}

/// Close the period ending at `job.period_end`: invoice it, then renew the subscription (or end
/// it when it was to cancel at period end) and schedule the next close. A job for a period that
/// is no longer current (already closed, subscription canceled) does nothing, so replays and
/// racing workers are harmless; the unique (subscription, period start) constraint backs this.
pub async fn close_period(
    tx: &mut TenantTx,
    env: Env<'_>,
    job: &PeriodClose,
    cause: &Cause,
) -> Result<Option<Invoice>, Error> {
    let mut subscription = repo::subscriptions::lock(tx, job.subscription_id).await?;
    if subscription.state == SubscriptionState::Canceled
        || subscription.current_period_end != job.period_end
    {
        return Ok(None);
    }
    let (start, end) = (
        subscription.current_period_start,
        subscription.current_period_end,
    );
    if repo::invoices::exists_for_period(tx, subscription.id, start).await? {
        return Ok(None);
    }
    let plan = plan_of(tx, &subscription).await?;
    let invoice = issue(tx, env, &subscription, &plan, (start, end), cause).await?;

    if subscription.cancel_at_period_end {
        subscription.state = SubscriptionState::Canceled;
        subscription.canceled_at = Some(end);
        let subscription = repo::subscriptions::save(tx, &subscription, env.now).await?;
        subscriptions::ended(tx, env, &subscription, CancelReason::PeriodEnd, cause).await?;
    } else {
        let (index, next_start, next_end) = subscription.next_period();
        subscription.period_index = index;
        subscription.current_period_start = next_start;
        subscription.current_period_end = next_end;
        subscription.price_since = next_start;
        let subscription = repo::subscriptions::save(tx, &subscription, env.now).await?;
        subscriptions::schedule_close(tx, &subscription).await?;
        env.outbox
            .enqueue(
                tx,
                events::subscription_changed(&subscription, subscription.price_id, cause)?,
            )
            .await?;
    }
    Ok(Some(invoice))
}

/// The final invoice of a subscription canceled at `end`, mid-period: the flat fee for the
/// time the price was in force, the usage so far, and pending lines.
pub async fn final_invoice(
    tx: &mut TenantTx,
    env: Env<'_>,
    subscription: &Subscription,
    end: DateTime<Utc>,
    cause: &Cause,
) -> Result<Invoice, Error> {
    let plan = plan_of(tx, subscription).await?;
    let start = subscription.current_period_start;
    issue(tx, env, subscription, &plan, (start, end), cause).await
}

async fn plan_of(tx: &mut TenantTx, subscription: &Subscription) -> Result<Plan, Error> {
    repo::catalogue::get_plan(tx, &subscription.plan_id)
        .await?
        .ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "subscription {} has unknown plan {}",
                subscription.id,
                subscription.plan_id
            ))
        })
}

/// Build, number and store the invoice of [start, end): the flat fee of the current price for
/// the part of the period it was in force (all of it unless the price changed or the
/// subscription ends early), usage lines above the included units, late usage, and pending
/// lines (earlier prices of the period). A zero total is PAID at once (the free plan); otherwise OPEN and due after the
/// payment terms.
async fn issue(
    tx: &mut TenantTx,
    env: Env<'_>,
    subscription: &Subscription,
    plan: &Plan,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    cause: &Cause,
) -> Result<Invoice, Error> {
    let (_, subscribed) =
        subscriptions::subscribable_price(tx, subscription.price_id, "price_id").await?;
    let currency = subscribed.price.currency;
    let interval = subscribed.price.interval;
    let id = InvoiceId::new();
    let meters = repo::catalogue::list_meters(tx).await?;
    let taken = repo::usage::take_for_invoice(tx, id, start, end).await?;

    let mut lines = Vec::new();
    let prices = plan
        .prices
        .iter()
        .filter(|p| p.price.currency == currency && p.price.interval == interval);
    for price in prices {
        match &price.price.kind {
            PriceKind::Flat => {
                // Only the subscribed price: a plan with several flat prices in one currency
                // and interval would otherwise charge them all.
                if price.id != subscription.price_id {
                    continue;
                }
                let from = subscription.price_since.clamp(start, end);
                let full = (subscription.current_period_end - subscription.current_period_start)
                    .num_seconds();
                let used = (end - from).num_seconds();
                let mut amount = price.price.unit_amount;
                let mut description = format!("{} ({:?})", plan.display_name, interval);
                if used != full {
                    amount = prorate(amount, used.max(0), full.max(1))?;
                    description = format!("{description}, {used} of {full} seconds");
                }
                lines.push(InvoiceLine {
                    kind: LineKind::Flat,
                    description,
                    price_id: Some(price.id),
                    meter_id: String::new(),
                    quantity: 1,
                    unit_amount: amount,
                    amount,
                    period_start: from,
                    period_end: end,
                });
            }
            PriceKind::Usage {
                meter_id,
                included_units,
            } => {
                let aggregation = meters
                    .iter()
                    .find(|m| &m.id == meter_id)
                    .map_or(Aggregation::Sum, |m| m.aggregation);
                let in_period = taken.iter().find(|t| &t.meter_id == meter_id && !t.late);
                let mut quantity = in_period.map_or(0, |t| t.quantity(aggregation));
                if aggregation == Aggregation::Max {
                    let level = repo::usage::level_before(tx, meter_id, start).await?;
                    quantity = quantity.max(level);
                }
                let billable = (quantity - included_units).max(0);
                lines.push(InvoiceLine {
                    kind: LineKind::Usage,
                    description: format!(
                        "{meter_id}: {quantity} used, {included_units} included, {billable} billed"
                    ),
                    price_id: Some(price.id),
                    meter_id: meter_id.clone(),
                    quantity: billable,
                    unit_amount: price.price.unit_amount,
                    amount: InvoiceLine::amount_of(billable, price.price.unit_amount)?,
                    period_start: start,
                    period_end: end,
                });
                // Late usage is charged per unit without included units: the allowance belonged
                // to the period it occurred in, which is already invoiced. Gauges (MAX) have no
                // late usage: their level is carried into the current period instead.
                let late = taken.iter().find(|t| &t.meter_id == meter_id && t.late);
                if let Some(late) = late.filter(|_| aggregation != Aggregation::Max) {
                    let quantity = late.quantity(aggregation);
                    lines.push(InvoiceLine {
                        kind: LineKind::LateUsage,
                        description: format!(
                            "{meter_id}: {quantity} late usage from closed periods"
                        ),
                        price_id: Some(price.id),
                        meter_id: meter_id.clone(),
                        quantity,
                        unit_amount: price.price.unit_amount,
                        amount: InvoiceLine::amount_of(quantity, price.price.unit_amount)?,
                        period_start: late.first,
                        period_end: late.last,
                    });
                }
            }
        }
    }
    lines.extend(repo::invoices::take_pending_lines(tx, subscription.id, id).await?);

    let totals = Totals::of(&lines, env.settings.tax_rate())?;
    let paid_at_once = totals.total <= 0;
    let mut invoice = Invoice {
        id,
        tenant_id: subscription.tenant_id,
        subscription_id: subscription.id,
        number: None,
        state: if paid_at_once {
            InvoiceState::Paid
        } else {
            InvoiceState::Open
        },
        currency,
        lines,
        totals,
        amount_paid: 0,
        period_start: start,
        period_end: end,
        issue_time: Some(env.now),
        due_time: Some(env.now + env.settings.payment_terms()),
        paid_time: paid_at_once.then_some(env.now),
        created_at: env.now,
    };
    // Numbered last: the year's counter row stays locked until this transaction commits.
    let year = numbering_year(env.now);
    let sequence = repo::invoices::next_number(tx, year).await?;
    invoice.number = Some(invoice_number(
        &env.settings.invoice_number_prefix,
        year,
        sequence,
    ));
    repo::invoices::insert(tx, &invoice).await?;
    env.outbox
        .enqueue(tx, events::invoice_finalized(&invoice, cause)?)
        .await?;
    if paid_at_once {
        env.outbox
            .enqueue(tx, events::invoice_paid(&invoice, cause)?)
            .await?;
    }
    tracing::info!(invoice_id = %invoice.id, number = ?invoice.number, total = invoice.totals.total, "invoice finalized");
    Ok(invoice)
}

/// A payment provider reports the invoice paid: PAID with `amount_paid` (the total when not
/// given); a PAST_DUE subscription is ACTIVE again. An invoice no longer payable is left alone.
pub async fn paid(
    tx: &mut TenantTx,
    env: Env<'_>,
    invoice_id: InvoiceId,
    amount_paid: Option<i64>,
    cause: &Cause,
) -> Result<(), Error> {
    let mut invoice = repo::invoices::lock(tx, invoice_id).await?;
    let Ok(state) = invoice.state.pay() else {
        tracing::warn!(%invoice_id, state = invoice.state.name(), "payment for an invoice that is not payable");
        return Ok(());
    };
    invoice.state = state;
    invoice.amount_paid = amount_paid.unwrap_or(invoice.totals.total);
    invoice.paid_time = Some(env.now);
    repo::invoices::save_state(tx, &invoice).await?;
    env.outbox
        .enqueue(tx, events::invoice_paid(&invoice, cause)?)
        .await?;
    let mut subscription = repo::subscriptions::lock(tx, invoice.subscription_id).await?;
    if subscription.state == SubscriptionState::PastDue {
        subscription.state = SubscriptionState::Active;
        let subscription = repo::subscriptions::save(tx, &subscription, env.now).await?;
        env.outbox
            .enqueue(
                tx,
                events::subscription_changed(&subscription, subscription.price_id, cause)?,
            )
            .await?;
    }
    Ok(())
}

/// A payment attempt failed: the subscription is PAST_DUE (still in service) and a dunning job
/// gives up on the invoice after the grace period unless it is paid by then.
pub async fn payment_failed(
    tx: &mut TenantTx,
    env: Env<'_>,
    invoice_id: InvoiceId,
    cause: &Cause,
) -> Result<(), Error> {
    let invoice = repo::invoices::lock(tx, invoice_id).await?;
    if invoice.state != InvoiceState::Open {
        return Ok(());
    }
    let mut subscription = repo::subscriptions::lock(tx, invoice.subscription_id).await?;
    if subscription.state == SubscriptionState::Active {
        subscription.state = SubscriptionState::PastDue;
        let subscription = repo::subscriptions::save(tx, &subscription, env.now).await?;
        env.outbox
            .enqueue(
                tx,
                events::subscription_changed(&subscription, subscription.price_id, cause)?,
            )
            .await?;
    }
    let job = NewJob::new(
        DUNNING_JOB,
        format!("dunning:{invoice_id}"),
        env.now + env.settings.dunning_grace(),
    )
    .tenant(invoice.tenant_id)
    .payload(&Dunning {
        invoice_id,
        subscription_id: invoice.subscription_id,
    })?;
    jobs::schedule(tx, job).await?;
    Ok(())
}

/// The grace period is over: an invoice still OPEN is UNCOLLECTIBLE and its subscription, if
/// still PAST_DUE, is canceled.
pub async fn give_up(
    tx: &mut TenantTx,
    env: Env<'_>,
    job: &Dunning,
    cause: &Cause,
) -> Result<(), Error> {
    let mut invoice = repo::invoices::lock(tx, job.invoice_id).await?;
    if invoice.state != InvoiceState::Open {
        return Ok(());
    }
    invoice.state = InvoiceState::Uncollectible;
    repo::invoices::save_state(tx, &invoice).await?;
    env.outbox
        .enqueue(tx, events::invoice_uncollectible(&invoice, cause)?)
        .await?;
    let mut subscription = repo::subscriptions::lock(tx, job.subscription_id).await?;
    if subscription.state == SubscriptionState::PastDue {
        subscription.state = SubscriptionState::Canceled;
        subscription.canceled_at = Some(env.now);
        let subscription = repo::subscriptions::save(tx, &subscription, env.now).await?;
        subscriptions::ended(tx, env, &subscription, CancelReason::Uncollectible, cause).await?;
    }
    Ok(())
}

/// Void an OPEN invoice (FAILED_PRECONDITION otherwise).
pub async fn void(
    tx: &mut TenantTx,
    env: Env<'_>,
    invoice_id: InvoiceId,
    reason: &str,
    cause: &Cause,
) -> Result<Invoice, Error> {
    let mut invoice = repo::invoices::lock(tx, invoice_id).await?;
    invoice.state = invoice.state.void()?;
    repo::invoices::save_state(tx, &invoice).await?;
    env.outbox
        .enqueue(tx, events::invoice_voided(&invoice, reason, cause)?)
        .await?;
    Ok(invoice)
}
