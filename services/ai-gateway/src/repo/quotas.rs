//! Quotas and reservations. A reservation is one conditional UPDATE of the tenant's quota row
//! (plus its reservations row): concurrent calls serialise on the row, and the condition is
//! re-checked on the row as the previous writer left it, so `used + reserved <= limit` holds
//! whatever the concurrency.

use chrono::{DateTime, Utc};
use keel_kernel::Error;
use keel_kernel::db::TenantTx;

use crate::domain::{CompletionId, Period, Quota};

const COLUMNS: &str =
    "tenant_id, limit_tokens, period_start, period_end, used_tokens, reserved_tokens";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: keel_kernel::TenantId,
    limit_tokens: i64,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
    used_tokens: i64,
    reserved_tokens: i64,
}

impl From<Row> for Quota {
    fn from(row: Row) -> Quota {
        Quota {
            tenant: row.tenant_id,
            period: Period {
                start: row.period_start,
                end: row.period_end,
            },
            limit_tokens: row.limit_tokens,
            used_tokens: row.used_tokens,
            reserved_tokens: row.reserved_tokens,
        }
    }
}

/// The tenant's quota for the period containing `now`, locked for the rest of the transaction:
/// created with `default_limit` and the calendar month when the tenant has none yet, moved to the
/// next period (usage reset) when its period has ended.
pub async fn current(
    tx: &mut TenantTx,
    now: DateTime<Utc>,
    default_limit: i64,
) -> Result<Quota, Error> {
    let month = Period::month_of(now);
    sqlx::query(
        "INSERT INTO quotas (tenant_id, limit_tokens, period_start, period_end, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tx.tenant())
    .bind(default_limit)
    .bind(month.start)
    .bind(month.end)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let row: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM quotas WHERE tenant_id = $1 FOR UPDATE"
    ))
    .bind(tx.tenant())
    .fetch_one(&mut **tx)
    .await?;
    let quota = Quota::from(row);
    if now < quota.period.end {
        return Ok(quota);
    }
    let next = quota.period.current_at(now);
    let row: Row = sqlx::query_as(&format!(
        "UPDATE quotas SET period_start = $2, period_end = $3, used_tokens = 0, updated_at = $4 \
          WHERE tenant_id = $1 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(next.start)
    .bind(next.end)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// Reserve `tokens` for `completion` if the quota covers them: the fast path is this single
/// conditional UPDATE. `None` when the row is missing, its period has ended, or the quota does
/// not cover the tokens (the caller then looks closer with [`current`]).
pub async fn try_reserve(
    tx: &mut TenantTx,
    completion: CompletionId,
    tokens: i64,
    now: DateTime<Utc>,
) -> Result<Option<Quota>, Error> {
    // One statement: the reservation row exists exactly when the counter moved.
    let row: Option<Row> = sqlx::query_as(&format!(
        "WITH reserved AS ( \
            UPDATE quotas SET reserved_tokens = reserved_tokens + $3, updated_at = $4 \
             WHERE tenant_id = $1 AND period_end > $4 \
               AND (limit_tokens < 0 OR limit_tokens - used_tokens - reserved_tokens >= $3) \
             RETURNING {COLUMNS}), \
         held AS ( \
            INSERT INTO reservations (tenant_id, completion_id, tokens, created_at) \
            SELECT tenant_id, $2, $3, $4 FROM reserved) \
         SELECT {COLUMNS} FROM reserved"
    ))
    .bind(tx.tenant())
    .bind(completion)
    .bind(tokens)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Quota::from))
}

/// Settle `completion`: its reservation (if the sweeper has not released it already) is removed
/// from `reserved`, and `charged` tokens are added to `used` (0 for a rollback).
pub async fn settle(
    tx: &mut TenantTx,
    completion: CompletionId,
    charged: i64,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "WITH released AS ( \
            DELETE FROM reservations WHERE tenant_id = $1 AND completion_id = $2 RETURNING tokens) \
         UPDATE quotas SET reserved_tokens = reserved_tokens - COALESCE((SELECT sum(tokens) FROM released), 0), \
                           used_tokens = used_tokens + $3, updated_at = $4 \
          WHERE tenant_id = $1",
    )
    .bind(tx.tenant())
    .bind(completion)
    .bind(charged)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Release the tenant's reservations created before `before` (calls that crashed or hung);
/// returns how many.
pub async fn release_expired(tx: &mut TenantTx, before: DateTime<Utc>) -> Result<u64, Error> {
    let (count, tokens): (i64, Option<i64>) = sqlx::query_as(
        "WITH released AS ( \
            DELETE FROM reservations WHERE tenant_id = $1 AND created_at < $2 RETURNING tokens), \
         total AS (SELECT count(*) AS n, sum(tokens)::bigint AS tokens FROM released), \
         updated AS ( \
            UPDATE quotas SET reserved_tokens = reserved_tokens - (SELECT COALESCE(tokens, 0) FROM total) \
             WHERE tenant_id = $1 AND (SELECT n FROM total) > 0) \
         SELECT n, tokens FROM total",
    )
    .bind(tx.tenant())
    .bind(before)
    .fetch_one(&mut **tx)
    .await?;
    if count > 0 {
        tracing::warn!(
            count,
            tokens = tokens.unwrap_or(0),
            "released expired reservations"
        );
    }
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Apply billing's entitlements (newest `version` wins): the limit and the period; usage resets
/// when the period is a new one. Returns whether it applied.
pub async fn apply_entitlements(
    tx: &mut TenantTx,
    limit_tokens: i64,
    period: Period,
    version: i64,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let applied = sqlx::query(
        "INSERT INTO quotas (tenant_id, limit_tokens, period_start, period_end, entitlements_version, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id) DO UPDATE SET \
            limit_tokens = EXCLUDED.limit_tokens, \
            used_tokens = CASE WHEN quotas.period_start = EXCLUDED.period_start THEN quotas.used_tokens ELSE 0 END, \
            period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end, \
            entitlements_version = EXCLUDED.entitlements_version, updated_at = EXCLUDED.updated_at \
          WHERE quotas.entitlements_version < EXCLUDED.entitlements_version",
    )
    .bind(tx.tenant())
    .bind(limit_tokens)
    .bind(period.start)
    .bind(period.end)
    .bind(version)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(applied > 0)
}
