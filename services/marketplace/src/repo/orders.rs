//! Orders (tenant table).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId, UserId};

use crate::domain::order::NewOrder;
use crate::domain::{ListingId, OfferId, Order, OrderId, OrderState};

const COLUMNS: &str = "tenant_id, id, listing_id, offer_id, buyer_id, seller_id, quantity, \
                       unit_price, total_amount, currency, commission_amount, refunded_amount, \
                       state, cancel_reason, fulfilled_at, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: OrderId,
    listing_id: ListingId,
    offer_id: Option<OfferId>,
    buyer_id: UserId,
    seller_id: UserId,
    quantity: i64,
    unit_price: i64,
    total_amount: i64,
    currency: String,
    commission_amount: i64,
    refunded_amount: i64,
    state: OrderState,
    cancel_reason: String,
    fulfilled_at: Option<DateTime<Utc>>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Order {
    fn from(row: Row) -> Order {
        Order {
            tenant_id: row.tenant_id,
            id: row.id,
            listing_id: row.listing_id,
            offer_id: row.offer_id,
            buyer_id: row.buyer_id,
            seller_id: row.seller_id,
            quantity: row.quantity,
            unit_price: row.unit_price,
            total_amount: row.total_amount,
            currency: row.currency,
            commission_amount: row.commission_amount,
            refunded_amount: row.refunded_amount,
            state: row.state,
            cancel_reason: row.cancel_reason,
            fulfilled_at: row.fulfilled_at,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

pub async fn insert(tx: &mut TenantTx, new: &NewOrder) -> Result<Order, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO orders (tenant_id, id, listing_id, offer_id, buyer_id, seller_id, quantity, \
                             unit_price, total_amount, currency, commission_amount, state, \
                             created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'placed', $12, $12) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(new.id)
    .bind(new.listing_id)
    .bind(new.offer_id)
    .bind(new.buyer_id)
    .bind(new.seller_id)
    .bind(new.quantity)
    .bind(new.unit_price)
    .bind(new.total_amount)
    .bind(&new.currency)
    .bind(new.commission_amount)
    .bind(new.at)
    .fetch_one(&mut **tx)
    .await
    .map_err(|err| {
        Error::from(err).on_constraint("orders_offer_key", "the offer already placed an order")
    })?;
    Ok(row.into())
}

pub async fn get(tx: &mut TenantTx, id: OrderId) -> Result<Option<Order>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orders WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Order::from))
}

/// The order, locked until the transaction ends: its moves serialise here.
pub async fn lock(tx: &mut TenantTx, id: OrderId) -> Result<Option<Order>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orders WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Order::from))
}

/// What a move changes besides the state.
#[derive(Debug, Clone, Default)]
pub struct Change<'a> {
    pub cancel_reason: Option<&'a str>,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub refunded_amount: Option<i64>,
}

pub async fn set_state(
    tx: &mut TenantTx,
    id: OrderId,
    state: OrderState,
    change: Change<'_>,
    at: DateTime<Utc>,
) -> Result<Order, Error> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE orders SET state = $3, cancel_reason = COALESCE($4, cancel_reason), \
                fulfilled_at = COALESCE($5, fulfilled_at), \
                refunded_amount = COALESCE($6, refunded_amount), \
                version = version + 1, updated_at = $7 \
          WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(state)
    .bind(change.cancel_reason)
    .bind(change.fulfilled_at)
    .bind(change.refunded_amount)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// A page of orders, newest first: those `party` buys or sells, or all of them.
pub async fn list(
    tx: &mut TenantTx,
    party: Option<UserId>,
    state: Option<OrderState>,
    before: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Order>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orders \
          WHERE tenant_id = $1 \
            AND ($2::uuid IS NULL OR buyer_id = $2 OR seller_id = $2) \
            AND ($3::text IS NULL OR state = $3) \
            AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
          ORDER BY created_at DESC, id DESC LIMIT $6"
    ))
    .bind(tx.tenant())
    .bind(party)
    .bind(state)
    .bind(before.map(|cursor| cursor.at))
    .bind(before.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Order::from).collect())
}
