//! Subscriptions (tenant table; at most one live per tenant, by a partial unique index).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId};

use crate::domain::{BillingInterval, PriceId, Subscription, SubscriptionId, SubscriptionState};

const COLUMNS: &str = "tenant_id, id, plan_id, price_id, state, billing_interval, anchor, \
                       period_index, current_period_start, current_period_end, price_since, \
                       cancel_at_period_end, canceled_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: SubscriptionId,
    plan_id: String,
    price_id: PriceId,
    state: SubscriptionState,
    billing_interval: BillingInterval,
    anchor: DateTime<Utc>,
    period_index: i32,
    current_period_start: DateTime<Utc>,
    current_period_end: DateTime<Utc>,
    price_since: DateTime<Utc>,
    cancel_at_period_end: bool,
    canceled_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Subscription {
    fn from(row: Row) -> Subscription {
        Subscription {
            id: row.id,
            tenant_id: row.tenant_id,
            plan_id: row.plan_id,
            price_id: row.price_id,
            state: row.state,
            interval: row.billing_interval,
            anchor: row.anchor,
            period_index: row.period_index,
            current_period_start: row.current_period_start,
            current_period_end: row.current_period_end,
            price_since: row.price_since,
            cancel_at_period_end: row.cancel_at_period_end,
            canceled_at: row.canceled_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

pub const ONE_LIVE: &str = "subscriptions_one_live";

/// Insert a new ACTIVE subscription whose first period starts at `start`. FAILED_PRECONDITION
/// when the tenant already has a live one (the partial unique index, whatever the race).
pub async fn insert(
    tx: &mut TenantTx,
    plan: &str,
    price: PriceId,
    interval: BillingInterval,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Subscription, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO subscriptions (tenant_id, id, plan_id, price_id, state, billing_interval, anchor, \
                                    current_period_start, current_period_end, price_since, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'active', $5, $6, $6, $7, $6, $8, $8) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(SubscriptionId::new())
    .bind(plan)
    .bind(price)
    .bind(interval)
    .bind(start)
    .bind(end)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(|err| {
        let err = Error::from(err);
        if err.constraint() == Some(ONE_LIVE) {
            Error::failed_precondition(
                "the tenant already has a live subscription; change it with UpdateSubscription",
            )
        } else {
            err
        }
    })?;
    Ok(row.into())
}

pub async fn get(tx: &mut TenantTx, id: SubscriptionId) -> Result<Option<Subscription>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Subscription::from))
}

/// The subscription, locked until the transaction ends: every change to it (requests, period
/// close, webhooks, dunning) takes this lock first.
pub async fn lock(tx: &mut TenantTx, id: SubscriptionId) -> Result<Subscription, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Subscription::from)
        .ok_or_else(|| Error::not_found("subscription", id))
}

/// The tenant's live subscription, locked, if it has one.
pub async fn lock_live(tx: &mut TenantTx) -> Result<Option<Subscription>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE tenant_id = $1 AND state <> 'canceled' FOR UPDATE"
    ))
    .bind(tx.tenant())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Subscription::from))
}

/// The tenant's live subscription, if it has one (no lock).
pub async fn live(tx: &mut TenantTx) -> Result<Option<Subscription>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE tenant_id = $1 AND state <> 'canceled'"
    ))
    .bind(tx.tenant())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Subscription::from))
}

/// The tenant's subscriptions, newest first.
pub async fn list(
    tx: &mut TenantTx,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Subscription>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE tenant_id = $1 \
            AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
          ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(tx.tenant())
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Subscription::from).collect())
}

/// Write back the mutable fields of `subscription` (price, state, period, flags).
pub async fn save(
    tx: &mut TenantTx,
    subscription: &Subscription,
    now: DateTime<Utc>,
) -> Result<Subscription, Error> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE subscriptions SET plan_id = $3, price_id = $4, state = $5, period_index = $6, \
                current_period_start = $7, current_period_end = $8, cancel_at_period_end = $9, \
                canceled_at = $10, updated_at = $11, price_since = $12 \
          WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(subscription.id)
    .bind(&subscription.plan_id)
    .bind(subscription.price_id)
    .bind(subscription.state)
    .bind(subscription.period_index)
    .bind(subscription.current_period_start)
    .bind(subscription.current_period_end)
    .bind(subscription.cancel_at_period_end)
    .bind(subscription.canceled_at)
    .bind(now)
    .bind(subscription.price_since)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}
