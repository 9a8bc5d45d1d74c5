//! `members`: delivery's projection of the tenant's members (tenancy's member events).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::{Error, UserId};

/// Record `user` as a member (`active`) or not, unless an event at least as new was applied
/// already; true when applied.
pub async fn apply(
    tx: &mut TenantTx,
    user: UserId,
    active: bool,
    version: i64,
    at: DateTime<Utc>,
) -> Result<bool, Error> {
    let applied = sqlx::query(
        "INSERT INTO members (tenant_id, user_id, active, version, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET active = EXCLUDED.active, \
         version = EXCLUDED.version, updated_at = EXCLUDED.updated_at \
         WHERE members.version < EXCLUDED.version",
    )
    .bind(tx.tenant())
    .bind(user)
    .bind(active)
    .bind(version)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(applied.rows_affected() > 0)
}

/// Whether `user` is a member of the transaction's tenant. The row is share-locked until the
/// transaction ends, so a removal arriving meanwhile waits for this assignment to commit and
/// then finds the task among the removed member's open work.
pub async fn is_member(tx: &mut TenantTx, user: UserId) -> Result<bool, Error> {
    let row: Option<(bool,)> = sqlx::query_as(
        "SELECT active FROM members WHERE tenant_id = $1 AND user_id = $2 FOR SHARE",
    )
    .bind(tx.tenant())
    .bind(user)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some_and(|(active,)| active))
}
