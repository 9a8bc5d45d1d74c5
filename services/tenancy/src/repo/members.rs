//! Memberships (tenant table; run in the tenant's transaction).

use chrono::{DateTime, Utc};
use keel_kernel::db::Tx;
use keel_kernel::{Error, TenantId, UserId};

use super::After;
use crate::domain::{Membership, Role};

const COLUMNS: &str = "tenant_id, user_id, role, email, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    user_id: UserId,
    role: String,
    email: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for Membership {
    type Error = Error;
    fn try_from(row: Row) -> Result<Membership, Error> {
        Ok(Membership {
            tenant_id: row.tenant_id,
            user_id: row.user_id,
            role: Role::from_db(&row.role)?,
            email: row.email,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Add `user` to `tenant`. CONFLICT when they already are a member.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, user_id = %user))]
pub async fn insert(
    tx: &mut Tx,
    tenant: TenantId,
    user: UserId,
    role: &Role,
    email: &str,
) -> Result<Membership, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO memberships (tenant_id, user_id, role, email) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(user)
    .bind(role.to_string())
    .bind(email)
    .fetch_one(&mut **tx)
    .await
    .map_err(|err| {
        if super::violates(&err, "memberships_pkey") {
            Error::conflict("the user is already a member of this tenant").with_cause(err)
        } else {
            Error::from(err)
        }
    })?;
    row.try_into()
}

pub async fn get(tx: &mut Tx, tenant: TenantId, user: UserId) -> Result<Option<Membership>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM memberships WHERE tenant_id = $1 AND user_id = $2"
    ))
    .bind(tenant)
    .bind(user)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Membership::try_from).transpose()
}

/// A page of the tenant's members, by join time.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn list(
    tx: &mut Tx,
    tenant: TenantId,
    after: After,
    limit: i64,
) -> Result<Vec<Membership>, Error> {
    let (after_time, after_id) = after.unzip();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM memberships \
          WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, user_id) > ($2, $3)) \
          ORDER BY created_at, user_id LIMIT $4"
    ))
    .bind(tenant)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(Membership::try_from).collect()
}

pub async fn set_role(
    tx: &mut Tx,
    tenant: TenantId,
    user: UserId,
    role: &Role,
) -> Result<Membership, Error> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE memberships SET role = $3, updated_at = now() WHERE tenant_id = $1 AND user_id = $2 \
         RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(user)
    .bind(role.to_string())
    .fetch_one(&mut **tx)
    .await?;
    row.try_into()
}

pub async fn delete(tx: &mut Tx, tenant: TenantId, user: UserId) -> Result<(), Error> {
    sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn count_owners(tx: &mut Tx, tenant: TenantId) -> Result<i64, Error> {
    let (owners,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM memberships WHERE tenant_id = $1 AND role = $2")
            .bind(tenant)
            .bind(Role::Owner.to_string())
            .fetch_one(&mut **tx)
            .await?;
    Ok(owners)
}

/// Whether `user` is a member of `tenant`, asked in the user's own `user_tx` (for callers whose
/// token is not scoped to the tenant).
pub async fn is_member(tx: &mut Tx, tenant: TenantId, user: UserId) -> Result<bool, Error> {
    let (member,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM memberships WHERE tenant_id = $1 AND user_id = $2)",
    )
    .bind(tenant)
    .bind(user)
    .fetch_one(&mut **tx)
    .await?;
    Ok(member)
}
