//! The module catalogue (global table) and each tenant's modules and flag overrides (tenant
//! tables).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::Rank;
use keel_kernel::{Error, TenantId};
use sqlx::PgConnection;

use crate::domain::{FeatureFlag, FlagName, Module, ModuleName, TenantModule};

#[derive(sqlx::FromRow)]
struct ModuleRow {
    name: String,
    display_name: String,
    description: String,
    default_enabled: bool,
    position: i32,
}

impl From<ModuleRow> for Module {
    fn from(row: ModuleRow) -> Module {
        Module {
            name: row.name,
            display_name: row.display_name,
            description: row.description,
            default_enabled: row.default_enabled,
            position: row.position,
        }
    }
}

#[derive(sqlx::FromRow)]
struct TenantModuleRow {
    tenant_id: TenantId,
    module: String,
    enabled: bool,
    updated_at: DateTime<Utc>,
}

impl From<TenantModuleRow> for TenantModule {
    fn from(row: TenantModuleRow) -> TenantModule {
        TenantModule {
            tenant_id: row.tenant_id,
            module: row.module,
            enabled: row.enabled,
            updated_at: row.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct FlagRow {
    tenant_id: TenantId,
    name: String,
    enabled: bool,
    updated_at: DateTime<Utc>,
}

impl From<FlagRow> for FeatureFlag {
    fn from(row: FlagRow) -> FeatureFlag {
        FeatureFlag {
            tenant_id: row.tenant_id,
            name: row.name,
            enabled: row.enabled,
            updated_at: row.updated_at,
        }
    }
}

/// The catalogue in display order, after position `after`.
pub async fn catalogue(
    conn: &mut PgConnection,
    after: Option<Rank>,
    limit: i64,
) -> Result<Vec<Module>, Error> {
    let rows: Vec<ModuleRow> = sqlx::query_as(
        "SELECT name, display_name, description, default_enabled, position FROM modules \
          WHERE $1::int IS NULL OR position > $1 ORDER BY position LIMIT $2",
    )
    .bind(after.map(|rank| rank.0))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Module::from).collect())
}

pub async fn exists(conn: &mut PgConnection, module: &ModuleName) -> Result<bool, Error> {
    let (exists,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM modules WHERE name = $1)")
            .bind(module.as_str())
            .fetch_one(conn)
            .await?;
    Ok(exists)
}

/// Give a new tenant every catalogue module at its default setting.
pub async fn init_for_tenant(tx: &mut TenantTx) -> Result<(), Error> {
    sqlx::query("INSERT INTO tenant_modules (tenant_id, module, enabled) SELECT $1, name, default_enabled FROM modules")
        .bind(tx.tenant())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Set a module on or off for the tenant. Returns the setting and whether it changed.
#[tracing::instrument(skip_all, fields(tenant_id = %tx.tenant(), module = %module))]
pub async fn set(
    tx: &mut TenantTx,
    module: &ModuleName,
    enabled: bool,
) -> Result<(TenantModule, bool), Error> {
    let tenant = tx.tenant();
    let current: Option<TenantModuleRow> = sqlx::query_as(
        "SELECT tenant_id, module, enabled, updated_at FROM tenant_modules \
          WHERE tenant_id = $1 AND module = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(module.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(current) = current
        && current.enabled == enabled
    {
        return Ok((current.into(), false));
    }
    let row: TenantModuleRow = sqlx::query_as(
        "INSERT INTO tenant_modules (tenant_id, module, enabled) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, module) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now() \
         RETURNING tenant_id, module, enabled, updated_at",
    )
    .bind(tenant)
    .bind(module.as_str())
    .bind(enabled)
    .fetch_one(&mut **tx)
    .await?;
    Ok((row.into(), true))
}

/// Names of the tenant's enabled modules, in catalogue order.
pub async fn enabled(tx: &mut TenantTx) -> Result<Vec<String>, Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT tm.module FROM tenant_modules tm JOIN modules m ON m.name = tm.module \
          WHERE tm.tenant_id = $1 AND tm.enabled ORDER BY m.position",
    )
    .bind(tx.tenant())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(name,)| name).collect())
}

/// Create or replace the tenant's override of a flag.
pub async fn set_flag(
    tx: &mut TenantTx,
    flag: &FlagName,
    enabled: bool,
) -> Result<FeatureFlag, Error> {
    let row: FlagRow = sqlx::query_as(
        "INSERT INTO feature_flags (tenant_id, name, enabled) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now() \
         RETURNING tenant_id, name, enabled, updated_at",
    )
    .bind(tx.tenant())
    .bind(flag.as_str())
    .bind(enabled)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// The tenant's flag overrides, by name.
pub async fn flag_overrides(tx: &mut TenantTx) -> Result<BTreeMap<String, bool>, Error> {
    let rows: Vec<(String, bool)> =
        sqlx::query_as("SELECT name, enabled FROM feature_flags WHERE tenant_id = $1")
            .bind(tx.tenant())
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().collect())
}
