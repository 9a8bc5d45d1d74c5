//! The append-only audit logs. Nothing here updates or deletes: the tables refuse it anyway.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId, UserId};
use sqlx::PgConnection;
use sqlx::types::Json;

/// One audited mutation.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor_kind: &'static str,
    pub actor_id: String,
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: String,
    pub request_id: String,
    pub ip_address: String,
    pub metadata: HashMap<String, String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub tenant_id: TenantId,
    pub id: uuid::Uuid,
    pub actor_kind: String,
    pub actor_id: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub request_id: String,
    pub ip_address: String,
    pub metadata: Json<HashMap<String, String>>,
    pub created_at: DateTime<Utc>,
}

/// Record a tenant action, in the caller's transaction (scoped to `tenant`).
pub async fn record_tenant(
    conn: &mut PgConnection,
    tenant: TenantId,
    entry: &AuditEntry,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, actor_kind, actor_id, action, target_type, target_id, request_id, ip_address, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(tenant)
    .bind(uuid::Uuid::now_v7())
    .bind(entry.actor_kind)
    .bind(&entry.actor_id)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(&entry.target_id)
    .bind(&entry.request_id)
    .bind(&entry.ip_address)
    .bind(Json(&entry.metadata))
    .execute(conn)
    .await?;
    Ok(())
}

/// Record an account action (no tenant), in the caller's transaction.
pub async fn record_account(
    conn: &mut PgConnection,
    user: UserId,
    entry: &AuditEntry,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO account_audit_log (id, user_id, actor_kind, actor_id, action, target_type, target_id, request_id, ip_address, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(user)
    .bind(entry.actor_kind)
    .bind(&entry.actor_id)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(&entry.target_id)
    .bind(&entry.request_id)
    .bind(&entry.ip_address)
    .bind(Json(&entry.metadata))
    .execute(conn)
    .await?;
    Ok(())
}

/// Filters of a tenant audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Keyset page token: entries older than this id.
    pub before: Option<uuid::Uuid>,
}

/// The tenant's entries, newest first (ids are UUIDv7, so id order is time order).
pub async fn list_tenant(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<AuditRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, id, actor_kind, actor_id, action, target_type, target_id, request_id, ip_address, metadata, created_at \
         FROM audit_log WHERE tenant_id = $1 \
           AND ($2::text IS NULL OR actor_id = $2) AND ($3::text IS NULL OR action = $3) \
           AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5) \
           AND ($6::uuid IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7",
    )
    .bind(tenant)
    .bind(&filter.actor_id)
    .bind(&filter.action)
    .bind(filter.start)
    .bind(filter.end)
    .bind(filter.before)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}
