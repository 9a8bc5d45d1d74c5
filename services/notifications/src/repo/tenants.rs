//! The projection of tenants (`tenants`): name, owner and default language.

use keel_kernel::db::TenantTx;
use keel_kernel::{Error, UserId};

/// A tenant as messages need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantInfo {
    pub name: String,
    /// Its creator, who receives what concerns the tenant as a whole.
    pub owner: Option<UserId>,
    /// The tenant's default language, "" when it chose none.
    pub default_locale: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    name: String,
    owner_id: Option<uuid::Uuid>,
    default_locale: String,
}

/// The transaction's tenant; a tenant whose creation was never seen has no name and no owner.
pub async fn get(tx: &mut TenantTx) -> Result<TenantInfo, Error> {
    let row: Option<Row> =
        sqlx::query_as("SELECT name, owner_id, default_locale FROM tenants WHERE tenant_id = $1")
            .bind(tx.tenant().as_uuid())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row
        .map(|row| TenantInfo {
            name: row.name,
            owner: row.owner_id.map(UserId::from_uuid),
            default_locale: row.default_locale,
        })
        .unwrap_or_default())
}

pub async fn created(tx: &mut TenantTx, name: &str, owner: Option<UserId>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO tenants (tenant_id, name, owner_id) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET name = EXCLUDED.name, owner_id = EXCLUDED.owner_id",
    )
    .bind(tx.tenant().as_uuid())
    .bind(name)
    .bind(owner.map(|u| u.as_uuid()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The tenant's name or default language changed (`tenancy.tenant.updated` carries both).
pub async fn updated(tx: &mut TenantTx, name: &str, default_locale: &str) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO tenants (tenant_id, name, default_locale) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET name = EXCLUDED.name, \
           default_locale = EXCLUDED.default_locale",
    )
    .bind(tx.tenant().as_uuid())
    .bind(name)
    .bind(default_locale)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
