//! The usage log.

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId};

use crate::domain::{CallStatus, CompletionId, CountedBy, TokenCounts, UsageRecord};

const COLUMNS: &str = "tenant_id, id, principal_id, model, provider, prompt_tokens, completion_tokens, \
     cost_micros, currency, status, counted_by, request_id, created_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: CompletionId,
    principal_id: String,
    model: String,
    provider: String,
    prompt_tokens: i64,
    completion_tokens: i64,
    cost_micros: i64,
    currency: String,
    status: CallStatus,
    counted_by: CountedBy,
    request_id: String,
    created_at: DateTime<Utc>,
}

impl From<Row> for UsageRecord {
    fn from(row: Row) -> UsageRecord {
        UsageRecord {
            id: row.id,
            tenant: row.tenant_id,
            principal: row.principal_id,
            model: row.model,
            provider: row.provider,
            tokens: TokenCounts {
                prompt_tokens: row.prompt_tokens,
                completion_tokens: row.completion_tokens,
                cost_micros: row.cost_micros,
            },
            currency: row.currency,
            status: row.status,
            counted_by: row.counted_by,
            request_id: row.request_id,
            created_at: row.created_at,
        }
    }
}

pub async fn insert(tx: &mut TenantTx, record: &UsageRecord) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO usage_records ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(tx.tenant())
    .bind(record.id)
    .bind(&record.principal)
    .bind(&record.model)
    .bind(&record.provider)
    .bind(record.tokens.prompt_tokens)
    .bind(record.tokens.completion_tokens)
    .bind(record.tokens.cost_micros)
    .bind(&record.currency)
    .bind(record.status)
    .bind(record.counted_by)
    .bind(&record.request_id)
    .bind(record.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A page of the log, newest first, strictly before `after` (a cursor from the previous page),
/// within `[start, end)` when given.
pub async fn list(
    tx: &mut TenantTx,
    after: Option<TimeId>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<UsageRecord>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM usage_records \
          WHERE tenant_id = $1 \
            AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
            AND ($4::timestamptz IS NULL OR created_at >= $4) \
            AND ($5::timestamptz IS NULL OR created_at < $5) \
          ORDER BY created_at DESC, id DESC LIMIT $6"
    ))
    .bind(tx.tenant())
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(start)
    .bind(end)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(UsageRecord::from).collect())
}
