//! The kernel's `idempotency_keys` table, for the one thing the kernel does not do yet: forget
//! keys after the retention. TODO(kernel): a retention sweep in the kernel for every service.

use chrono::{DateTime, Utc};
use keel_kernel::Error;
use sqlx::PgConnection;

/// Delete `method`'s keys stored before `cutoff`; how many went. A global transaction sees them:
/// CreateOrder's keys are scoped to `<tenant>:<buyer>` principals, which carry no tenant column.
pub async fn purge(
    conn: &mut PgConnection,
    method: &str,
    cutoff: DateTime<Utc>,
) -> Result<u64, Error> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE method = $1 AND created_at < $2")
        .bind(method)
        .bind(cutoff)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
