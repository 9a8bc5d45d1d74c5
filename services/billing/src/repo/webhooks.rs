//! Provider events already processed (global: the ids are the provider's).

use chrono::{DateTime, Utc};
use keel_kernel::Error;
use sqlx::PgConnection;

/// Record the event; false when it was recorded before (a redelivery). A concurrent delivery of
/// the same event waits for the first transaction and then finds the row.
pub async fn record(
    conn: &mut PgConnection,
    provider: &str,
    event_id: &str,
    event_type: &str,
    at: DateTime<Utc>,
) -> Result<bool, Error> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_events (provider, event_id, event_type, received_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(provider)
    .bind(event_id)
    .bind(event_type)
    .bind(at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
