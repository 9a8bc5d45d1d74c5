//! Offers (tenant table).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId, UserId};

use crate::domain::offer::NewOffer;
use crate::domain::{ListingId, Offer, OfferId, OfferParty, OfferState, OrderId};

const COLUMNS: &str = "tenant_id, id, listing_id, buyer_id, seller_id, proposed_by, unit_price, \
                       quantity, currency, state, expires_at, order_id, counter_offer_id, \
                       countered_offer_id, version, created_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: OfferId,
    listing_id: ListingId,
    buyer_id: UserId,
    seller_id: UserId,
    proposed_by: OfferParty,
    unit_price: i64,
    quantity: i64,
    currency: String,
    state: OfferState,
    expires_at: DateTime<Utc>,
    order_id: Option<OrderId>,
    counter_offer_id: Option<OfferId>,
    countered_offer_id: Option<OfferId>,
    version: i64,
    created_at: DateTime<Utc>,
}

impl From<Row> for Offer {
    fn from(row: Row) -> Offer {
        Offer {
            tenant_id: row.tenant_id,
            id: row.id,
            listing_id: row.listing_id,
            buyer_id: row.buyer_id,
            seller_id: row.seller_id,
            proposed_by: row.proposed_by,
            unit_price: row.unit_price,
            quantity: row.quantity,
            currency: row.currency,
            state: row.state,
            expires_at: row.expires_at,
            order_id: row.order_id,
            counter_offer_id: row.counter_offer_id,
            countered_offer_id: row.countered_offer_id,
            version: row.version,
            created_at: row.created_at,
        }
    }
}

pub async fn insert(tx: &mut TenantTx, new: &NewOffer) -> Result<Offer, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO offers (tenant_id, id, listing_id, buyer_id, seller_id, proposed_by, unit_price, \
                             quantity, currency, state, expires_at, countered_offer_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12, $12) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(new.id)
    .bind(new.listing_id)
    .bind(new.buyer_id)
    .bind(new.seller_id)
    .bind(new.proposed_by)
    .bind(new.unit_price)
    .bind(new.quantity)
    .bind(&new.currency)
    .bind(new.expires_at)
    .bind(new.countered_offer_id)
    .bind(new.at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

pub async fn get(tx: &mut TenantTx, id: OfferId) -> Result<Option<Offer>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM offers WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Offer::from))
}

/// The offer, locked until the transaction ends: answers to one offer serialise here, so it is
/// accepted (or rejected, countered, expired) once.
pub async fn lock(tx: &mut TenantTx, id: OfferId) -> Result<Option<Offer>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM offers WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Offer::from))
}

/// Record an answer on a locked offer.
pub async fn set_state(
    tx: &mut TenantTx,
    id: OfferId,
    state: OfferState,
    order: Option<OrderId>,
    counter: Option<OfferId>,
    at: DateTime<Utc>,
) -> Result<Offer, Error> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE offers SET state = $3, order_id = COALESCE($4, order_id), \
                counter_offer_id = COALESCE($5, counter_offer_id), version = version + 1, updated_at = $6 \
          WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(state)
    .bind(order)
    .bind(counter)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// A page of a listing's offers by creation time: all of them, or only those `party` is in.
pub async fn list(
    tx: &mut TenantTx,
    listing: ListingId,
    party: Option<UserId>,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Offer>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM offers \
          WHERE tenant_id = $1 AND listing_id = $2 \
            AND ($3::uuid IS NULL OR buyer_id = $3 OR seller_id = $3) \
            AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5)) \
          ORDER BY created_at, id LIMIT $6"
    ))
    .bind(tx.tenant())
    .bind(listing)
    .bind(party)
    .bind(after.map(|cursor| cursor.at))
    .bind(after.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Offer::from).collect())
}
