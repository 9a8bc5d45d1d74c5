//! API keys (tenant table) and the global key-to-tenant directory the exchange needs.

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId};
use sqlx::PgConnection;

use crate::domain::ApiKeyId;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub tenant_id: TenantId,
    pub id: ApiKeyId,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "tenant_id, id, name, prefix, scopes, expires_at, created_by, created_at, last_used_at, revoked_at";

pub struct NewApiKey<'a> {
    pub tenant: TenantId,
    pub id: ApiKeyId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub secret_hash: &'a [u8],
    pub scopes: &'a [String],
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: &'a str,
}

/// Store a key and its directory entry. The transaction must be scoped to `key.tenant`.
pub async fn create(conn: &mut PgConnection, key: NewApiKey<'_>) -> Result<ApiKeyRow, Error> {
    let row: ApiKeyRow = sqlx::query_as(&format!(
        "INSERT INTO api_keys (tenant_id, id, name, prefix, secret_hash, scopes, expires_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(key.tenant)
    .bind(key.id)
    .bind(key.name)
    .bind(key.prefix)
    .bind(key.secret_hash)
    .bind(key.scopes)
    .bind(key.expires_at)
    .bind(key.created_by)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO api_key_directory (key_id, owner_tenant) VALUES ($1, $2)")
        .bind(key.id)
        .bind(key.tenant)
        .execute(conn)
        .await?;
    Ok(row)
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
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ApiKeyId,
    secret_hash: &[u8],
) -> Result<Option<ApiKeyRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE api_keys SET last_used_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND secret_hash = $3 AND revoked_at IS NULL \
           AND (expires_at IS NULL OR expires_at > now()) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(secret_hash)
    .fetch_optional(conn)
    .await?)
}

/// The tenant's keys that are not revoked, newest first, after `after`.
pub async fn list_live(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Option<ApiKeyId>,
    limit: i64,
) -> Result<Vec<ApiKeyRow>, Error> {
    // Keyset on created_at then id: key ids are random, creation time orders them.
    let after_time: Option<DateTime<Utc>> = match after {
        Some(id) => sqlx::query_as::<_, (DateTime<Utc>,)>(
            "SELECT created_at FROM api_keys WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|(at,)| at),
        None => None,
    };
    if after.is_some() && after_time.is_none() {
        return Err(Error::invalid(
            "page_token",
            "is not a page token of this list",
        ));
    }
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(tenant)
    .bind(after_time)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Revoke a live key; `None` if the tenant has no such live key.
pub async fn revoke(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ApiKeyId,
    by: &str,
) -> Result<Option<ApiKeyRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = now(), revoked_by = $3 \
         WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(by)
    .fetch_optional(conn)
    .await?)
}
