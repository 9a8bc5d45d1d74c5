//! Failed-login counters (global): one row per counter key (see `domain::lockout`).

use chrono::{DateTime, Utc};
use keel_kernel::Error;
use sqlx::PgConnection;

use crate::domain::lockout::Counter;

#[derive(sqlx::FromRow)]
struct Row {
    failures: i32,
    last_failure_at: DateTime<Utc>,
    next_attempt_at: Option<DateTime<Utc>>,
    locked_until: Option<DateTime<Utc>>,
}

/// The counter under `key`, locked for the rest of the transaction.
pub async fn get(conn: &mut PgConnection, key: &str) -> Result<Option<Counter>, Error> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT failures, last_failure_at, next_attempt_at, locked_until FROM login_throttle WHERE key = $1 FOR UPDATE",
    )
    .bind(key)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(counter))
}

fn counter(row: Row) -> Counter {
    Counter {
        failures: row.failures.max(0) as u32,
        last_failure_at: row.last_failure_at,
        next_attempt_at: row.next_attempt_at,
        locked_until: row.locked_until,
    }
}

/// The counter under `key`, created empty if there is none, locked for the rest of the
/// transaction: concurrent attempts on the same key queue here, so each sees the ones before it.
pub async fn lock(conn: &mut PgConnection, key: &str) -> Result<Counter, Error> {
    // `DO UPDATE` (a no-op) rather than `DO NOTHING`: it locks an existing row and returns it.
    let row: Row = sqlx::query_as(
        "INSERT INTO login_throttle (key, failures, last_failure_at) VALUES ($1, 0, now()) \
         ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key \
         RETURNING failures, last_failure_at, next_attempt_at, locked_until",
    )
    .bind(key)
    .fetch_one(conn)
    .await?;
    Ok(counter(row))
}

pub async fn put(conn: &mut PgConnection, key: &str, counter: &Counter) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO login_throttle (key, failures, last_failure_at, next_attempt_at, locked_until) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (key) DO UPDATE SET failures = EXCLUDED.failures, last_failure_at = EXCLUDED.last_failure_at, \
           next_attempt_at = EXCLUDED.next_attempt_at, locked_until = EXCLUDED.locked_until",
    )
    .bind(key)
    .bind(counter.failures.min(i32::MAX as u32) as i32)
    .bind(counter.last_failure_at)
    .bind(counter.next_attempt_at)
    .bind(counter.locked_until)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn clear(conn: &mut PgConnection, key: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}
