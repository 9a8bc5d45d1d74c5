//! What identity keeps of tenancy's facts: tenant states (global) and role bindings (tenant
//! tables). Written only by the tenancy event consumer; each write applies only if its event is
//! newer than what is stored (aggregate versions), so redelivered or reordered events are harmless.

use keel_kernel::db::TenantTx;
use keel_kernel::{Error, TenantId, UserId};
use sqlx::PgConnection;

use crate::domain::TenantState;

/// Apply a tenant state from an event of aggregate `version` (0 = the publisher does not version:
/// apply in arrival order). Deleted is terminal. Returns whether it was applied.
pub async fn apply_tenant_state(
    conn: &mut PgConnection,
    tenant: TenantId,
    state: TenantState,
    version: i64,
) -> Result<bool, Error> {
    let applied: Option<(bool,)> = sqlx::query_as(
        "INSERT INTO tenants (id, state, version) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, version = GREATEST(tenants.version, EXCLUDED.version), updated_at = now() \
         WHERE tenants.state <> 'deleted' AND (EXCLUDED.version = 0 OR tenants.version < EXCLUDED.version) \
         RETURNING true",
    )
    .bind(tenant)
    .bind(state)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    Ok(applied.is_some())
}

pub async fn tenant_state(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Option<TenantState>, Error> {
    let row: Option<(TenantState,)> = sqlx::query_as("SELECT state FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(state,)| state))
}

/// Set (`Some(role)`) or remove (`None`) a member's binding in the transaction's tenant, if the
/// event is newer.
pub async fn apply_binding(
    tx: &mut TenantTx,
    user: UserId,
    role: Option<&str>,
    version: i64,
) -> Result<bool, Error> {
    let applied: Option<(bool,)> = sqlx::query_as(
        "INSERT INTO role_bindings (tenant_id, user_id, role, removed, version) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = EXCLUDED.role, removed = EXCLUDED.removed, \
           version = GREATEST(role_bindings.version, EXCLUDED.version), updated_at = now() \
         WHERE EXCLUDED.version = 0 OR role_bindings.version < EXCLUDED.version \
         RETURNING true",
    )
    .bind(tx.tenant())
    .bind(user)
    .bind(role.unwrap_or(""))
    .bind(role.is_none())
    .bind(version)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(applied.is_some())
}

/// The user's role in the transaction's tenant, if they are a member.
pub async fn member_role(tx: &mut TenantTx, user: UserId) -> Result<Option<String>, Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT role FROM role_bindings WHERE tenant_id = $1 AND user_id = $2 AND NOT removed",
    )
    .bind(tx.tenant())
    .bind(user)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(role,)| role))
}
