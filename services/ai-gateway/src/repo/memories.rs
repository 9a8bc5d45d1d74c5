//! Memories and their search.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::{Error, TenantId};
use sqlx::types::Json;

use crate::domain::{Memory, MemoryId, NewMemory, SearchTerms};

const COLUMNS: &str =
    "tenant_id, id, namespace, content, metadata, required_permission, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: String,
    namespace: String,
    content: String,
    metadata: Json<BTreeMap<String, String>>,
    required_permission: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Memory {
    fn from(row: Row) -> Memory {
        Memory {
            tenant: row.tenant_id,
            id: MemoryId::from_stored(row.id),
            namespace: row.namespace,
            content: row.content,
            metadata: row.metadata.0,
            required_permission: row.required_permission,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Create or replace (the creation time is kept on replace).
pub async fn upsert(
    tx: &mut TenantTx,
    memory: &NewMemory,
    now: DateTime<Utc>,
) -> Result<Memory, Error> {
    let terms = SearchTerms::of(&memory.content);
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO memories (tenant_id, id, namespace, content, metadata, required_permission, terms, ngrams, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET namespace = EXCLUDED.namespace, content = EXCLUDED.content, \
            metadata = EXCLUDED.metadata, required_permission = EXCLUDED.required_permission, \
            terms = EXCLUDED.terms, ngrams = EXCLUDED.ngrams, updated_at = EXCLUDED.updated_at \
         RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(memory.id.as_str())
    .bind(&memory.namespace)
    .bind(&memory.content)
    .bind(Json(&memory.metadata))
    .bind(&memory.required_permission)
    .bind(terms.words_text())
    .bind(terms.ngrams_text())
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// Whether a memory was deleted.
pub async fn delete(tx: &mut TenantTx, id: &MemoryId) -> Result<bool, Error> {
    let deleted = sqlx::query("DELETE FROM memories WHERE tenant_id = $1 AND id = $2")
        .bind(tx.tenant())
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

/// The distinct `required_permission`s of the tenant's memories (the caller's token decides which
/// of them it holds: permission patterns are matched in the kernel, not in SQL).
pub async fn permissions_in_use(tx: &mut TenantTx) -> Result<Vec<String>, Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT required_permission FROM memories WHERE tenant_id = $1 AND required_permission <> ''",
    )
    .bind(tx.tenant())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(p,)| p).collect())
}

/// A candidate match: the memory and its stored terms, for scoring.
pub struct Candidate {
    pub memory: Memory,
    pub terms: String,
    pub ngrams: String,
}

#[derive(sqlx::FromRow)]
struct CandidateRow {
    #[sqlx(flatten)]
    row: Row,
    terms: String,
    ngrams: String,
}

/// Up to `limit` memories matching any term of `query` through the full-text index, best
/// `ts_rank` first, among those open to everyone or needing one of `permissions`.
pub async fn candidates(
    tx: &mut TenantTx,
    query: &SearchTerms,
    namespace: Option<&str>,
    permissions: &[String],
    limit: i64,
) -> Result<Vec<Candidate>, Error> {
    let tsquery = query.tsquery();
    if tsquery.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<CandidateRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, terms, ngrams FROM memories, to_tsquery('simple', $2) AS q \
          WHERE tenant_id = $1 AND search @@ q \
            AND ($3::text IS NULL OR namespace = $3) \
            AND (required_permission = '' OR required_permission = ANY($4)) \
          ORDER BY ts_rank(search, q) DESC, id LIMIT $5"
    ))
    .bind(tx.tenant())
    .bind(tsquery)
    .bind(namespace)
    .bind(permissions)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|c| Candidate {
            memory: c.row.into(),
            terms: c.terms,
            ngrams: c.ngrams,
        })
        .collect())
}
