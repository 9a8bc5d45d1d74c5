//! The module catalogue (global) and each tenant's modules and flag overrides (tenant tables).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keel_kernel::db::Tx;
use keel_kernel::{Error, TenantId};

use crate::domain::{FlagName, ModuleName};

/// A module of the catalogue.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Module {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub default_enabled: bool,
    pub position: i32,
}

/// A module's setting for one tenant.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantModule {
    pub tenant_id: TenantId,
    pub module: String,
    pub enabled: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeatureFlag {
    pub tenant_id: TenantId,
    pub name: String,
    pub enabled: bool,
    pub updated_at: DateTime<Utc>,
}

/// The catalogue in display order, after position `after`.
pub async fn catalogue(tx: &mut Tx, after: Option<i32>, limit: i64) -> Result<Vec<Module>, Error> {
    Ok(sqlx::query_as(
        "SELECT name, display_name, description, default_enabled, position FROM modules \
          WHERE $1::int IS NULL OR position > $1 ORDER BY position LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn exists(tx: &mut Tx, module: &ModuleName) -> Result<bool, Error> {
    let (exists,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM modules WHERE name = $1)")
            .bind(module.as_str())
            .fetch_one(&mut **tx)
            .await?;
    Ok(exists)
}

/// Give a new tenant every catalogue module at its default setting.
pub async fn init_for_tenant(tx: &mut Tx, tenant: TenantId) -> Result<(), Error> {
    sqlx::query("INSERT INTO tenant_modules (tenant_id, module, enabled) SELECT $1, name, default_enabled FROM modules")
        .bind(tenant)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Set a module on or off for the tenant. Returns the setting and whether it changed.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, module = %module))]
pub async fn set(
    tx: &mut Tx,
    tenant: TenantId,
    module: &ModuleName,
    enabled: bool,
) -> Result<(TenantModule, bool), Error> {
    let current: Option<TenantModule> = sqlx::query_as(
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
        return Ok((current, false));
    }
    let row = sqlx::query_as(
        "INSERT INTO tenant_modules (tenant_id, module, enabled) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, module) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now() \
         RETURNING tenant_id, module, enabled, updated_at",
    )
    .bind(tenant)
    .bind(module.as_str())
    .bind(enabled)
    .fetch_one(&mut **tx)
    .await?;
    Ok((row, true))
}

/// Names of the tenant's enabled modules, in catalogue order.
pub async fn enabled(tx: &mut Tx, tenant: TenantId) -> Result<Vec<String>, Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT tm.module FROM tenant_modules tm JOIN modules m ON m.name = tm.module \
          WHERE tm.tenant_id = $1 AND tm.enabled ORDER BY m.position",
    )
    .bind(tenant)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(name,)| name).collect())
}

/// Create or replace the tenant's override of a flag.
pub async fn set_flag(
    tx: &mut Tx,
    tenant: TenantId,
    flag: &FlagName,
    enabled: bool,
) -> Result<FeatureFlag, Error> {
    Ok(sqlx::query_as(
        "INSERT INTO feature_flags (tenant_id, name, enabled) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now() \
         RETURNING tenant_id, name, enabled, updated_at",
    )
    .bind(tenant)
    .bind(flag.as_str())
    .bind(enabled)
    .fetch_one(&mut **tx)
    .await?)
}

/// The tenant's flag overrides, by name.
pub async fn flag_overrides(
    tx: &mut Tx,
    tenant: TenantId,
) -> Result<BTreeMap<String, bool>, Error> {
    let rows: Vec<(String, bool)> =
        sqlx::query_as("SELECT name, enabled FROM feature_flags WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().collect())
}
