//! Tenant plans (tenant table, one row per tenant), as billing last announced them.

use keel_kernel::Error;
use keel_kernel::db::TenantTx;

/// The transaction's tenant's plan, if billing announced one.
pub async fn get(tx: &mut TenantTx) -> Result<Option<String>, Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT plan_id FROM tenant_plans WHERE tenant_id = $1")
            .bind(tx.tenant())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|(plan,)| plan))
}

/// Record `plan` at `version`; false (nothing changed) when a newer or equal version is stored.
pub async fn apply(tx: &mut TenantTx, plan: &str, version: i64) -> Result<bool, Error> {
    let done = sqlx::query(
        "INSERT INTO tenant_plans (tenant_id, plan_id, version) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET plan_id = EXCLUDED.plan_id, \
                version = EXCLUDED.version, updated_at = now() \
          WHERE tenant_plans.version < EXCLUDED.version",
    )
    .bind(tx.tenant())
    .bind(plan)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
