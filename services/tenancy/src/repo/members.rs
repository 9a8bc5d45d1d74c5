//! Memberships (tenant table).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId, UserId};
use sqlx::PgConnection;

use crate::domain::{Membership, Role};

const COLUMNS: &str = "tenant_id, user_id, role, email, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    user_id: UserId,
    role: Role,
    email: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Membership {
    fn from(row: Row) -> Membership {
        Membership {
            tenant_id: row.tenant_id,
            user_id: row.user_id,
            role: row.role,
            email: row.email,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Add `user` to the tenant. CONFLICT when they already are a member.
#[tracing::instrument(skip_all, fields(tenant_id = %tx.tenant(), user_id = %user))]
pub async fn insert(
    tx: &mut TenantTx,
    user: UserId,
    role: &Role,
    email: &str,
) -> Result<Membership, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO memberships (tenant_id, user_id, role, email) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(user)
    .bind(role)
    .bind(email)
    .fetch_one(&mut **tx)
    .await
    .map_err(|err| {
        Error::from(err).on_constraint(
            "memberships_pkey",
            "the user is already a member of this tenant",
        )
    })?;
    Ok(row.into())
}

pub async fn get(tx: &mut TenantTx, user: UserId) -> Result<Option<Membership>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM memberships WHERE tenant_id = $1 AND user_id = $2"
    ))
    .bind(tx.tenant())
    .bind(user)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Membership::from))
}

/// A page of the tenant's members by join time, strictly after `after`.
#[tracing::instrument(skip_all, fields(tenant_id = %tx.tenant()))]
pub async fn list(
    tx: &mut TenantTx,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Membership>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM memberships \
          WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, user_id) > ($2, $3)) \
          ORDER BY created_at, user_id LIMIT $4"
    ))
    .bind(tx.tenant())
    .bind(after.map(|cursor| cursor.at))
    .bind(after.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Membership::from).collect())
}

pub async fn set_role(tx: &mut TenantTx, user: UserId, role: &Role) -> Result<Membership, Error> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE memberships SET role = $3, updated_at = now() WHERE tenant_id = $1 AND user_id = $2 \
         RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(user)
    .bind(role)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

pub async fn delete(tx: &mut TenantTx, user: UserId) -> Result<(), Error> {
    sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
        .bind(tx.tenant())
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn count_owners(tx: &mut TenantTx) -> Result<i64, Error> {
    let (owners,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM memberships WHERE tenant_id = $1 AND role = $2")
            .bind(tx.tenant())
            .bind(Role::Owner)
            .fetch_one(&mut **tx)
            .await?;
    Ok(owners)
}

/// Whether `user` is a member of `tenant`. The one membership query not in a `TenantTx`: it runs
/// in the user's own `user_tx`, for callers whose token is not scoped to the tenant yet (the
/// policy `own_memberships` admits exactly that user's rows).
pub async fn is_member(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<bool, Error> {
    let (member,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM memberships WHERE tenant_id = $1 AND user_id = $2)",
    )
    .bind(tenant)
    .bind(user)
    .fetch_one(conn)
    .await?;
    Ok(member)
}
