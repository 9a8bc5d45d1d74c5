//! Usage records (tenant table): unique per (tenant, meter, idempotency key).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::{Error, TenantId};

use crate::domain::{Aggregation, InvoiceId, NewUsage, UsageRecord, UsageRecordId};

const COLUMNS: &str = "tenant_id, id, meter_id, quantity, occur_time, idempotency_key";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: UsageRecordId,
    meter_id: String,
    quantity: i64,
    occur_time: DateTime<Utc>,
    idempotency_key: String,
}

impl From<Row> for UsageRecord {
    fn from(row: Row) -> UsageRecord {
        UsageRecord {
            id: row.id,
            tenant_id: row.tenant_id,
            meter_id: row.meter_id,
            quantity: row.quantity,
            occur_time: row.occur_time,
            idempotency_key: row.idempotency_key,
        }
    }
}

/// Store `usage` unless a record with its (meter, idempotency key) exists: then that first record
/// is returned and nothing is added. `true` when this call stored it. A concurrent insert of the
/// same key waits for the first to commit, then finds it.
pub async fn record(tx: &mut TenantTx, usage: &NewUsage) -> Result<(UsageRecord, bool), Error> {
    let inserted: Option<Row> = sqlx::query_as(&format!(
        "INSERT INTO usage_records (tenant_id, id, meter_id, quantity, occur_time, idempotency_key) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT ON CONSTRAINT usage_records_idempotency DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(UsageRecordId::new())
    .bind(&usage.meter_id)
    .bind(usage.quantity)
    .bind(usage.occur_time)
    .bind(&usage.idempotency_key)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = inserted {
        return Ok((row.into(), true));
    }
    let first: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM usage_records \
          WHERE tenant_id = $1 AND meter_id = $2 AND idempotency_key = $3"
    ))
    .bind(tx.tenant())
    .bind(&usage.meter_id)
    .bind(&usage.idempotency_key)
    .fetch_one(&mut **tx)
    .await?;
    Ok((first.into(), false))
}

/// Each meter's aggregate over [start, end), per its aggregation; every meter (0 when unused),
/// or only `meter` when given. MAX meters are gauges: the last value before `start` counts.
pub async fn summaries(
    tx: &mut TenantTx,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    meter: Option<&str>,
) -> Result<Vec<(String, i64)>, Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT m.id, \
                (CASE m.aggregation \
                   WHEN 'sum' THEN COALESCE(sum(u.quantity), 0) \
                   WHEN 'count' THEN count(u.id) \
                   ELSE GREATEST(COALESCE(max(u.quantity), 0), COALESCE( \
                     (SELECT p.quantity FROM usage_records p \
                       WHERE p.tenant_id = $1 AND p.meter_id = m.id AND p.occur_time < $2 \
                       ORDER BY p.occur_time DESC, p.id DESC LIMIT 1), 0)) \
                 END)::bigint \
           FROM meters m \
           LEFT JOIN usage_records u \
             ON u.tenant_id = $1 AND u.meter_id = m.id AND u.occur_time >= $2 AND u.occur_time < $3 \
          WHERE ($4::text IS NULL OR m.id = $4) \
          GROUP BY m.id, m.aggregation ORDER BY m.id",
    )
    .bind(tx.tenant())
    .bind(start)
    .bind(end)
    .bind(meter)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows)
}

/// The usage an invoice takes: per meter, what occurred in its period and what occurred before
/// it (late usage of closed periods) and was not billed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub meter_id: String,
    pub late: bool,
    pub count: i64,
    pub sum: i64,
    pub max: i64,
    /// The earliest and latest occurrence among them.
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

impl Taken {
    pub fn quantity(&self, aggregation: Aggregation) -> i64 {
        match aggregation {
            Aggregation::Sum => self.sum,
            Aggregation::Count => self.count,
            Aggregation::Max => self.max,
        }
    }
}

/// Mark every unbilled record that occurred before `period_end` as billed by `invoice`, and
/// return their aggregates split into the period's and the late ones. A record committed after
/// this statement stays unbilled and is taken by the next invoice (as late usage): it is never
/// lost and never billed twice.
pub async fn take_for_invoice(
    tx: &mut TenantTx,
    invoice: InvoiceId,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
) -> Result<Vec<Taken>, Error> {
    #[allow(clippy::type_complexity)]
    let rows: Vec<(String, bool, i64, i64, i64, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "WITH taken AS ( \
            UPDATE usage_records SET invoice_id = $2 \
             WHERE tenant_id = $1 AND invoice_id IS NULL AND occur_time < $4 \
            RETURNING meter_id, occur_time, quantity) \
         SELECT meter_id, occur_time < $3, count(*), COALESCE(sum(quantity), 0)::bigint, \
                COALESCE(max(quantity), 0), min(occur_time), max(occur_time) \
           FROM taken GROUP BY 1, 2",
    )
    .bind(tx.tenant())
    .bind(invoice)
    .bind(period_start)
    .bind(period_end)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(meter_id, late, count, sum, max, first, last)| Taken {
            meter_id,
            late,
            count,
            sum,
            max,
            first,
            last,
        })
        .collect())
}

/// The last value of a gauge meter before `at` (0 when none): a MAX meter's carried-in level.
pub async fn level_before(tx: &mut TenantTx, meter: &str, at: DateTime<Utc>) -> Result<i64, Error> {
    let level: Option<(i64,)> = sqlx::query_as(
        "SELECT quantity FROM usage_records WHERE tenant_id = $1 AND meter_id = $2 AND occur_time < $3 \
          ORDER BY occur_time DESC, id DESC LIMIT 1",
    )
    .bind(tx.tenant())
    .bind(meter)
    .bind(at)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(level.map_or(0, |(q,)| q))
}
