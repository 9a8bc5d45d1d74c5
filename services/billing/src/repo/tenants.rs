//! What billing keeps per tenant: its entitlements version and its members (seats).

use keel_kernel::db::TenantTx;
use keel_kernel::{Error, UserId};

/// The next entitlements version of the transaction's tenant (1 for the first change).
pub async fn next_entitlements_version(tx: &mut TenantTx) -> Result<i64, Error> {
    let (version,): (i64,) = sqlx::query_as(
        "INSERT INTO billing_tenants (tenant_id, entitlements_version) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE \
            SET entitlements_version = billing_tenants.entitlements_version + 1 \
         RETURNING entitlements_version",
    )
    .bind(tx.tenant())
    .fetch_one(&mut **tx)
    .await?;
    Ok(version)
}

/// Add a member; false when they were one already.
pub async fn add_member(tx: &mut TenantTx, user: UserId) -> Result<bool, Error> {
    let added = sqlx::query(
        "INSERT INTO tenant_members (tenant_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(tx.tenant())
    .bind(user)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(added == 1)
}

/// Remove a member; false when they were not one.
pub async fn remove_member(tx: &mut TenantTx, user: UserId) -> Result<bool, Error> {
    let removed = sqlx::query("DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2")
        .bind(tx.tenant())
        .bind(user)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(removed == 1)
}

pub async fn member_count(tx: &mut TenantTx) -> Result<i64, Error> {
    let (count,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM tenant_members WHERE tenant_id = $1")
            .bind(tx.tenant())
            .fetch_one(&mut **tx)
            .await?;
    Ok(count)
}
