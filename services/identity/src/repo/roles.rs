//! Custom roles (tenant table).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::{Error, TenantId};

use crate::domain::{CustomRole, RoleId, RoleName};

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: RoleId,
    name: String,
    description: String,
    permissions: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for CustomRole {
    fn from(row: Row) -> CustomRole {
        CustomRole {
            tenant_id: row.tenant_id,
            id: row.id,
            name: row.name,
            description: row.description,
            permissions: row.permissions,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const COLUMNS: &str = "tenant_id, id, name, description, permissions, created_at, updated_at";

/// A taken name is CONFLICT.
pub async fn create(
    tx: &mut TenantTx,
    name: &RoleName,
    description: &str,
    permissions: &[String],
) -> Result<CustomRole, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO roles (tenant_id, id, name, description, permissions) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(RoleId::new())
    .bind(name.as_str())
    .bind(description)
    .bind(permissions)
    .fetch_one(&mut **tx)
    .await
    .map_err(|err| {
        Error::from(err).on_constraint(
            "roles_name_key",
            format!(
                "role.name: the tenant already has a role named {}",
                name.as_str()
            ),
        )
    })?;
    Ok(row.into())
}

/// The tenant's custom roles by name.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<CustomRole>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM roles WHERE tenant_id = $1 ORDER BY name"
    ))
    .bind(tx.tenant())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(CustomRole::from).collect())
}

pub async fn get(tx: &mut TenantTx, id: RoleId) -> Result<Option<CustomRole>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM roles WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(CustomRole::from))
}
