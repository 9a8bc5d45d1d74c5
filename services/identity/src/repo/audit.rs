//! The append-only audit logs. Nothing here updates or deletes: the tables refuse it anyway.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::{Actor, ActorKind, Error, TenantId, UserId};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::domain::{AuditEntry, AuditEvent, AuditEventId};

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: AuditEventId,
    actor_kind: ActorKind,
    actor_id: String,
    action: String,
    target_type: String,
    target_id: String,
    request_id: String,
    ip_address: String,
    metadata: Json<HashMap<String, String>>,
    created_at: DateTime<Utc>,
}

impl From<Row> for AuditEvent {
    fn from(row: Row) -> AuditEvent {
        AuditEvent {
            tenant_id: row.tenant_id,
            id: row.id,
            actor: Actor {
                kind: row.actor_kind,
                id: row.actor_id,
            },
            action: row.action,
            target_type: row.target_type,
            target_id: row.target_id,
            request_id: row.request_id,
            ip_address: row.ip_address,
            metadata: row.metadata.0,
            created_at: row.created_at,
        }
    }
}

/// Record a tenant action in the transaction's tenant.
pub async fn record_tenant(tx: &mut TenantTx, entry: &AuditEntry) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, actor_kind, actor_id, action, target_type, target_id, request_id, ip_address, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(tx.tenant())
    .bind(AuditEventId::new())
    .bind(entry.actor.kind)
    .bind(&entry.actor.id)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(&entry.target_id)
    .bind(&entry.request_id)
    .bind(&entry.ip_address)
    .bind(Json(&entry.metadata))
    .execute(&mut **tx)
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
    .bind(AuditEventId::new())
    .bind(user)
    .bind(entry.actor.kind)
    .bind(&entry.actor.id)
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
    /// Keyset page position: entries older than this id.
    pub before: Option<AuditEventId>,
}

/// The transaction tenant's entries, newest first (ids are UUIDv7, so id order is time order).
pub async fn list_tenant(
    tx: &mut TenantTx,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<AuditEvent>, Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT tenant_id, id, actor_kind, actor_id, action, target_type, target_id, request_id, ip_address, metadata, created_at \
         FROM audit_log WHERE tenant_id = $1 \
           AND ($2::text IS NULL OR actor_id = $2) AND ($3::text IS NULL OR action = $3) \
           AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5) \
           AND ($6::uuid IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7",
    )
    .bind(tx.tenant())
    .bind(&filter.actor_id)
    .bind(&filter.action)
    .bind(filter.start)
    .bind(filter.end)
    .bind(filter.before)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(AuditEvent::from).collect())
}
