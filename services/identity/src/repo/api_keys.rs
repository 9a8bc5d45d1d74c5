//! API keys (tenant table) and the global key-to-tenant directory the exchange needs.

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId};
use sqlx::PgConnection;

use crate::domain::{ApiKey, ApiKeyId};

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: ApiKeyId,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    created_by: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<Row> for ApiKey {
    fn from(row: Row) -> ApiKey {
        ApiKey {
            tenant_id: row.tenant_id,
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            scopes: row.scopes,
            expires_at: row.expires_at,
            created_by: row.created_by,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

const COLUMNS: &str =
    "tenant_id, id, name, prefix, scopes, expires_at, created_by, created_at, last_used_at";

pub struct NewApiKey<'a> {
    pub id: ApiKeyId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub secret_hash: &'a [u8],
    pub scopes: &'a [String],
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: &'a str,
}

/// Store a key in the transaction's tenant, and its directory entry.
pub async fn create(tx: &mut TenantTx, key: NewApiKey<'_>) -> Result<ApiKey, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO api_keys (tenant_id, id, name, prefix, secret_hash, scopes, expires_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(key.id)
    .bind(key.name)
    .bind(key.prefix)
    .bind(key.secret_hash)
    .bind(key.scopes)
    .bind(key.expires_at)
    .bind(key.created_by)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("INSERT INTO api_key_directory (key_id, owner_tenant) VALUES ($1, $2)")
        .bind(key.id)
        .bind(tx.tenant())
        .execute(&mut **tx)
        .await?;
    Ok(row.into())
}

/// The tenant that holds key `id`, from the global directory.
pub async fn owner(conn: &mut PgConnection, id: ApiKeyId) -> Result<Option<TenantId>, Error> {
    let row: Option<(TenantId,)> =
        sqlx::query_as("SELECT owner_tenant FROM api_key_directory WHERE key_id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(tenant,)| tenant))
}

/// The live key with this id and secret hash: not revoked, not expired. Marks it used.
pub async fn authenticate(
    tx: &mut TenantTx,
    id: ApiKeyId,
    secret_hash: &[u8],
) -> Result<Option<ApiKey>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE api_keys SET last_used_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND secret_hash = $3 AND revoked_at IS NULL \
           AND (expires_at IS NULL OR expires_at > now()) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(secret_hash)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(ApiKey::from))
}

/// The key with this id if it is still live (not revoked, not expired), without marking it used.
pub async fn live(tx: &mut TenantTx, id: ApiKeyId) -> Result<Option<ApiKey>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_keys \
         WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL \
           AND (expires_at IS NULL OR expires_at > now())"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(ApiKey::from))
}

/// The position of `key` in [`list_live`]'s order, for its page token.
pub fn cursor(key: &ApiKey) -> TimeId {
    TimeId {
        at: key.created_at,
        id: key.id.as_uuid(),
    }
}

/// The tenant's keys that are not revoked, newest first, after `after`. Keyset on creation time
/// then id: key ids are random, creation time orders them.
pub async fn list_live(
    tx: &mut TenantTx,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<ApiKey>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(tx.tenant())
    .bind(after.map(|cursor| cursor.at))
    .bind(after.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

/// Revoke a live key; `None` if the tenant has no such live key.
pub async fn revoke(tx: &mut TenantTx, id: ApiKeyId, by: &str) -> Result<Option<ApiKey>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = now(), revoked_by = $3 \
         WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(by)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(ApiKey::from))
}
