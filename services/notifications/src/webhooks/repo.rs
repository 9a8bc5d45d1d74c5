//! Webhook tables: SQL only, in the caller's tenant transaction (row-level security).

use chrono::{DateTime, Utc};
use keel_kernel::Error;
use keel_kernel::db::TenantTx;
use uuid::Uuid;

/// An endpoint as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Endpoint {
    pub id: Uuid,
    pub kind: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub telegram_bot_token: Option<String>,
    pub telegram_chat_id: Option<String>,
    pub enabled: bool,
    pub disabled_reason: String,
    pub consecutive_failures: i32,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ENDPOINT_COLUMNS: &str = "id, kind, url, description, event_types, secret, previous_secret, \
     previous_secret_expires_at, telegram_bot_token, telegram_chat_id, enabled, disabled_reason, \
     consecutive_failures, failing_since, created_at, updated_at";

pub struct NewEndpoint<'a> {
    pub id: Uuid,
    pub kind: &'a str,
    pub url: &'a str,
    pub description: &'a str,
    pub event_types: &'a [String],
    pub secret: Option<&'a str>,
    pub telegram_bot_token: Option<&'a str>,
    pub telegram_chat_id: Option<&'a str>,
}

pub async fn insert_endpoint(
    tx: &mut TenantTx,
    new: &NewEndpoint<'_>,
    now: DateTime<Utc>,
) -> Result<Endpoint, Error> {
    let endpoint = sqlx::query_as(&format!(
        "INSERT INTO webhook_endpoints (tenant_id, id, kind, url, description, event_types, secret, \
             telegram_bot_token, telegram_chat_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(tx.tenant().as_uuid())
    .bind(new.id)
    .bind(new.kind)
    .bind(new.url)
    .bind(new.description)
    .bind(new.event_types)
    .bind(new.secret)
    .bind(new.telegram_bot_token)
    .bind(new.telegram_chat_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(endpoint)
}

pub async fn endpoints(tx: &mut TenantTx) -> Result<Vec<Endpoint>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id"
    ))
    .bind(tx.tenant().as_uuid())
    .fetch_all(&mut **tx)
    .await?)
}

/// One endpoint, locked for update when `lock`.
pub async fn endpoint(tx: &mut TenantTx, id: Uuid, lock: bool) -> Result<Option<Endpoint>, Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2{lock}"
    ))
    .bind(tx.tenant().as_uuid())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Writes back an endpoint's editable fields.
pub async fn save_endpoint(
    tx: &mut TenantTx,
    endpoint: &Endpoint,
    now: DateTime<Utc>,
) -> Result<Endpoint, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5, secret = $6, \
             previous_secret = $7, previous_secret_expires_at = $8, enabled = $9, \
             disabled_reason = $10, consecutive_failures = $11, failing_since = $12, updated_at = $13 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(tx.tenant().as_uuid())
    .bind(endpoint.id)
    .bind(&endpoint.url)
    .bind(&endpoint.description)
    .bind(&endpoint.event_types)
    .bind(&endpoint.secret)
    .bind(&endpoint.previous_secret)
    .bind(endpoint.previous_secret_expires_at)
    .bind(endpoint.enabled)
    .bind(&endpoint.disabled_reason)
    .bind(endpoint.consecutive_failures)
    .bind(endpoint.failing_since)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn delete_endpoint(tx: &mut TenantTx, id: Uuid) -> Result<bool, Error> {
    let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
        .bind(tx.tenant().as_uuid())
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// Counts one more failure (atomically: deliveries to one endpoint run concurrently) and returns
/// the run so far: (failures in a row, since when).
pub async fn record_endpoint_failure(
    tx: &mut TenantTx,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(i32, DateTime<Utc>), Error> {
    let row: (i32, Option<DateTime<Utc>>) = sqlx::query_as(
        "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1, \
             failing_since = COALESCE(failing_since, $3) \
         WHERE tenant_id = $1 AND id = $2 RETURNING consecutive_failures, failing_since",
    )
    .bind(tx.tenant().as_uuid())
    .bind(id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok((row.0, row.1.unwrap_or(now)))
}

pub async fn record_endpoint_success(tx: &mut TenantTx, id: Uuid) -> Result<(), Error> {
    sqlx::query(
        "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL \
         WHERE tenant_id = $1 AND id = $2 AND consecutive_failures <> 0",
    )
    .bind(tx.tenant().as_uuid())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Disables an enabled endpoint; false when it was disabled already (so the event is sent once).
pub async fn disable_endpoint(
    tx: &mut TenantTx,
    id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let changed = sqlx::query(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $3, updated_at = $4 \
         WHERE tenant_id = $1 AND id = $2 AND enabled",
    )
    .bind(tx.tenant().as_uuid())
    .bind(id)
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: Uuid,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub summary: String,
    pub occurred_at: DateTime<Utc>,
}

pub struct NewMessage<'a> {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub payload: &'a serde_json::Value,
    pub summary: &'a str,
    pub occurred_at: DateTime<Utc>,
}

/// Inserts the message of an event; `None` when the event has one already.
pub async fn insert_message(
    tx: &mut TenantTx,
    new: &NewMessage<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, Error> {
    Ok(sqlx::query_scalar(
        "INSERT INTO webhook_messages (tenant_id, id, event_id, event_type, payload, summary, \
             occurred_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING id",
    )
    .bind(tx.tenant().as_uuid())
    .bind(new.id)
    .bind(new.event_id)
    .bind(new.event_type)
    .bind(new.payload)
    .bind(new.summary)
    .bind(new.occurred_at)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn message(tx: &mut TenantTx, id: Uuid) -> Result<Option<Message>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, event_type, payload, summary, occurred_at FROM webhook_messages \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tx.tenant().as_uuid())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub message_id: Uuid,
    pub endpoint_id: Uuid,
    pub state: String,
    pub run: i32,
    pub run_failures: i32,
    pub attempts: i32,
}

pub async fn insert_delivery(
    tx: &mut TenantTx,
    message: Uuid,
    endpoint: Uuid,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (tenant_id, message_id, endpoint_id, state, next_attempt_at, \
             created_at, updated_at) VALUES ($1, $2, $3, 'pending', $4, $4, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tx.tenant().as_uuid())
    .bind(message)
    .bind(endpoint)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The delivery, locked: attempts and replays of one delivery take turns.
pub async fn lock_delivery(
    tx: &mut TenantTx,
    message: Uuid,
    endpoint: Uuid,
) -> Result<Option<Delivery>, Error> {
    Ok(sqlx::query_as(
        "SELECT message_id, endpoint_id, state, run, run_failures, attempts FROM webhook_deliveries \
         WHERE tenant_id = $1 AND message_id = $2 AND endpoint_id = $3 FOR UPDATE",
    )
    .bind(tx.tenant().as_uuid())
    .bind(message)
    .bind(endpoint)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn update_delivery(
    tx: &mut TenantTx,
    delivery: &Delivery,
    next_attempt_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE webhook_deliveries SET state = $4, run = $5, run_failures = $6, attempts = $7, \
             next_attempt_at = $8, updated_at = $9 \
         WHERE tenant_id = $1 AND message_id = $2 AND endpoint_id = $3",
    )
    .bind(tx.tenant().as_uuid())
    .bind(delivery.message_id)
    .bind(delivery.endpoint_id)
    .bind(&delivery.state)
    .bind(delivery.run)
    .bind(delivery.run_failures)
    .bind(delivery.attempts)
    .bind(next_attempt_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The failed deliveries to `endpoint` of messages created since `since`.
pub async fn failed_since(
    tx: &mut TenantTx,
    endpoint: Uuid,
    since: DateTime<Utc>,
) -> Result<Vec<Uuid>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT message_id FROM webhook_deliveries \
         WHERE tenant_id = $1 AND endpoint_id = $2 AND created_at >= $3 AND state = 'failed' \
         ORDER BY created_at",
    )
    .bind(tx.tenant().as_uuid())
    .bind(endpoint)
    .bind(since)
    .fetch_all(&mut **tx)
    .await?)
}

pub struct NewAttempt<'a> {
    pub message_id: Uuid,
    pub endpoint_id: Uuid,
    pub attempt_number: i32,
    pub trigger: &'a str,
    pub attempted_at: DateTime<Utc>,
    pub succeeded: bool,
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub response_excerpt: &'a str,
    pub error: &'a str,
}

pub async fn insert_attempt(tx: &mut TenantTx, new: &NewAttempt<'_>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO webhook_attempts (tenant_id, id, message_id, endpoint_id, attempt_number, \
             trigger, attempted_at, succeeded, status_code, latency_ms, response_excerpt, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(tx.tenant().as_uuid())
    .bind(Uuid::now_v7())
    .bind(new.message_id)
    .bind(new.endpoint_id)
    .bind(new.attempt_number)
    .bind(new.trigger)
    .bind(new.attempted_at)
    .bind(new.succeeded)
    .bind(new.status_code)
    .bind(new.latency_ms)
    .bind(new.response_excerpt)
    .bind(new.error)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: Uuid,
    pub message_id: Uuid,
    pub event_type: String,
    pub attempt_number: i32,
    pub trigger: String,
    pub attempted_at: DateTime<Utc>,
    pub succeeded: bool,
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub response_excerpt: String,
    pub error: String,
}

pub async fn attempts(
    tx: &mut TenantTx,
    endpoint: Uuid,
    message: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AttemptRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT a.id, a.message_id, m.event_type, a.attempt_number, a.trigger, a.attempted_at, \
                a.succeeded, a.status_code, a.latency_ms, a.response_excerpt, a.error \
           FROM webhook_attempts a \
           JOIN webhook_messages m ON m.tenant_id = a.tenant_id AND m.id = a.message_id \
          WHERE a.tenant_id = $1 AND a.endpoint_id = $2 AND ($3::uuid IS NULL OR a.message_id = $3) \
          ORDER BY a.attempted_at DESC, a.id DESC LIMIT $4",
    )
    .bind(tx.tenant().as_uuid())
    .bind(endpoint)
    .bind(message)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}
