//! Custom roles (tenant table).

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId};
use sqlx::PgConnection;

use crate::domain::{RoleId, RoleName};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleRow {
    pub tenant_id: TenantId,
    pub id: RoleId,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "tenant_id, id, name, description, permissions, created_at, updated_at";

pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    name: &RoleName,
    description: &str,
    permissions: &[String],
) -> Result<RoleRow, Error> {
    sqlx::query_as(&format!(
        "INSERT INTO roles (tenant_id, id, name, description, permissions) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(RoleId::new())
    .bind(name.as_str())
    .bind(description)
    .bind(permissions)
    .fetch_one(conn)
    .await
    .map_err(|err| match Error::from(err) {
        conflict if conflict.code() == keel_kernel::ErrorCode::Conflict => {
            Error::conflict(format!("role.name: the tenant already has a role named {}", name.as_str()))
        }
        other => other,
    })
}

/// The tenant's custom roles by name.
pub async fn list(conn: &mut PgConnection, tenant: TenantId) -> Result<Vec<RoleRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM roles WHERE tenant_id = $1 ORDER BY name"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await?)
}

pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: RoleId,
) -> Result<Option<RoleRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM roles WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}
