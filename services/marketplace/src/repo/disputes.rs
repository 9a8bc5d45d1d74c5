//! Disputes (tenant table).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId, UserId};

use crate::domain::{Dispute, DisputeId, DisputeState, Order, OrderId, Resolution};

const COLUMNS: &str = "tenant_id, id, order_id, buyer_id, seller_id, opened_by, reason, state, \
                       resolution, resolution_note, resolved_by, refund_amount, escalated_at, \
                       resolved_at, version, created_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: DisputeId,
    order_id: OrderId,
    buyer_id: UserId,
    seller_id: UserId,
    opened_by: UserId,
    reason: String,
    state: DisputeState,
    resolution: Option<Resolution>,
    resolution_note: String,
    resolved_by: String,
    refund_amount: i64,
    escalated_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    version: i64,
    created_at: DateTime<Utc>,
}

impl From<Row> for Dispute {
    fn from(row: Row) -> Dispute {
        Dispute {
            tenant_id: row.tenant_id,
            id: row.id,
            order_id: row.order_id,
            buyer_id: row.buyer_id,
            seller_id: row.seller_id,
            opened_by: row.opened_by,
            reason: row.reason,
            state: row.state,
            resolution: row.resolution,
            resolution_note: row.resolution_note,
            resolved_by: row.resolved_by,
            refund_amount: row.refund_amount,
            escalated_at: row.escalated_at,
            resolved_at: row.resolved_at,
            version: row.version,
            created_at: row.created_at,
        }
    }
}

pub async fn insert(
    tx: &mut TenantTx,
    id: DisputeId,
    order: &Order,
    opened_by: UserId,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<Dispute, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO disputes (tenant_id, id, order_id, buyer_id, seller_id, opened_by, reason, state, \
                               created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $8) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(order.id)
    .bind(order.buyer_id)
    .bind(order.seller_id)
    .bind(opened_by)
    .bind(reason)
    .bind(at)
    .fetch_one(&mut **tx)
    .await
    .map_err(|err| {
        Error::from(err).on_constraint(
            "disputes_one_open_per_order",
            "the order already has an unresolved dispute",
        )
    })?;
    Ok(row.into())
}

pub async fn get(tx: &mut TenantTx, id: DisputeId) -> Result<Option<Dispute>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM disputes WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Dispute::from))
}

pub async fn lock(tx: &mut TenantTx, id: DisputeId) -> Result<Option<Dispute>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM disputes WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Dispute::from))
}

pub async fn escalate(
    tx: &mut TenantTx,
    id: DisputeId,
    at: DateTime<Utc>,
) -> Result<Dispute, Error> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE disputes SET state = 'escalated', escalated_at = $3, version = version + 1, updated_at = $3 \
          WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// How a dispute was settled, and by whom.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub resolution: Resolution,
    pub note: &'a str,
    pub resolved_by: &'a str,
    pub refund_amount: i64,
}

pub async fn resolve(
    tx: &mut TenantTx,
    id: DisputeId,
    settlement: &Settlement<'_>,
    at: DateTime<Utc>,
) -> Result<Dispute, Error> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE disputes SET state = 'resolved', resolution = $3, resolution_note = $4, resolved_by = $5, \
                refund_amount = $6, resolved_at = $7, version = version + 1, updated_at = $7 \
          WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(settlement.resolution)
    .bind(settlement.note)
    .bind(settlement.resolved_by)
    .bind(settlement.refund_amount)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// A page of disputes by creation time: those `party` is in, or all of them.
pub async fn list(
    tx: &mut TenantTx,
    party: Option<UserId>,
    state: Option<DisputeState>,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Dispute>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM disputes \
          WHERE tenant_id = $1 \
            AND ($2::uuid IS NULL OR buyer_id = $2 OR seller_id = $2) \
            AND ($3::text IS NULL OR state = $3) \
            AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5)) \
          ORDER BY created_at, id LIMIT $6"
    ))
    .bind(tx.tenant())
    .bind(party)
    .bind(state)
    .bind(after.map(|cursor| cursor.at))
    .bind(after.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Dispute::from).collect())
}
