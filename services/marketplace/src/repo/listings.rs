//! Listings (tenant table).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId, UserId};

use crate::domain::listing::NewListing;
use crate::domain::{Listing, ListingId, ListingState};
use keel_kernel::search;

const COLUMNS: &str = "tenant_id, id, seller_id, title, description, unit_price, currency, \
                       quantity_available, state, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: ListingId,
    seller_id: UserId,
    title: String,
    description: String,
    unit_price: i64,
    currency: String,
    quantity_available: i64,
    state: ListingState,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Listing {
    fn from(row: Row) -> Listing {
        Listing {
            tenant_id: row.tenant_id,
            id: row.id,
            seller_id: row.seller_id,
            title: row.title,
            description: row.description,
            unit_price: row.unit_price,
            currency: row.currency,
            quantity_available: row.quantity_available,
            state: row.state,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

pub async fn insert(
    tx: &mut TenantTx,
    id: ListingId,
    seller: UserId,
    new: &NewListing,
    at: DateTime<Utc>,
) -> Result<Listing, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO listings (tenant_id, id, seller_id, title, description, unit_price, currency, \
                               quantity_available, state, search_document, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'draft', $9, $10, $10) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(seller)
    .bind(&new.title)
    .bind(&new.description)
    .bind(new.unit_price)
    .bind(&new.currency)
    .bind(new.quantity_available)
    .bind(search::document(&[&new.title, &new.description]))
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

pub async fn get(tx: &mut TenantTx, id: ListingId) -> Result<Option<Listing>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM listings WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Listing::from))
}

/// The listing, locked until the transaction ends (edits and state changes serialise on it).
pub async fn lock(tx: &mut TenantTx, id: ListingId) -> Result<Option<Listing>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM listings WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Listing::from))
}

/// Write every editable field and the state of a locked listing, bumping its version.
pub async fn save(
    tx: &mut TenantTx,
    listing: &Listing,
    at: DateTime<Utc>,
) -> Result<Listing, Error> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE listings SET title = $3, description = $4, unit_price = $5, currency = $6, \
                quantity_available = $7, state = $8, search_document = $9, version = version + 1, \
                updated_at = $10 \
          WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(listing.id)
    .bind(&listing.title)
    .bind(&listing.description)
    .bind(listing.unit_price)
    .bind(&listing.currency)
    .bind(listing.quantity_available)
    .bind(listing.state)
    .bind(search::document(&[&listing.title, &listing.description]))
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// Take `quantity` units of a PUBLISHED listing, or None when it is not published or fewer are
/// left. One statement: a concurrent reserver of the same listing waits for this one to end and
/// then re-checks the condition on the new stock.
pub async fn reserve(
    tx: &mut TenantTx,
    id: ListingId,
    quantity: i64,
    at: DateTime<Utc>,
) -> Result<Option<Listing>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE listings SET quantity_available = quantity_available - $3, updated_at = $4 \
          WHERE tenant_id = $1 AND id = $2 AND state = 'published' AND quantity_available >= $3 \
          RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(quantity)
    .bind(at)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Listing::from))
}

/// Give back the units of a canceled or refunded order (whatever the listing's state).
pub async fn release(
    tx: &mut TenantTx,
    id: ListingId,
    quantity: i64,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE listings SET quantity_available = quantity_available + $3, updated_at = $4 \
          WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tx.tenant())
    .bind(id)
    .bind(quantity)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What a listing search asks for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<ListingState>,
    pub seller: Option<UserId>,
    pub min_unit_price: Option<i64>,
    pub max_unit_price: Option<i64>,
    /// Words for `plainto_tsquery('simple', ..)` (see `keel_kernel::search::query`).
    pub query: Option<String>,
    pub currency: Option<String>,
}

/// A page of the listings `viewer` may see (PUBLISHED ones and their own), by creation time.
pub async fn list(
    tx: &mut TenantTx,
    viewer: UserId,
    filter: &Filter,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Listing>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM listings \
          WHERE tenant_id = $1 AND (state = 'published' OR seller_id = $2) \
            AND ($3::text IS NULL OR state = $3) \
            AND ($4::uuid IS NULL OR seller_id = $4) \
            AND ($5::bigint IS NULL OR unit_price >= $5) \
            AND ($6::bigint IS NULL OR unit_price <= $6) \
            AND ($7::text IS NULL OR search @@ plainto_tsquery('simple', $7)) \
            AND ($8::text IS NULL OR currency = $8) \
            AND ($9::timestamptz IS NULL OR (created_at, id) > ($9, $10)) \
          ORDER BY created_at, id LIMIT $11"
    ))
    .bind(tx.tenant())
    .bind(viewer)
    .bind(filter.state)
    .bind(filter.seller)
    .bind(filter.min_unit_price)
    .bind(filter.max_unit_price)
    .bind(filter.query.as_deref())
    .bind(filter.currency.as_deref())
    .bind(after.map(|cursor| cursor.at))
    .bind(after.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Listing::from).collect())
}
