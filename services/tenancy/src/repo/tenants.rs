//! The tenant registry (a global table: callers pass only tenant ids they have authorised).

use chrono::{DateTime, Utc};
use keel_kernel::db::Tx;
use keel_kernel::{Error, TenantId, UserId};

use super::{After, violates};
use crate::domain::tenant::NewTenant;
use crate::domain::{Tenant, TenantState};

const COLUMNS: &str = "id, name, slug, state, plan, created_by, suspended_reason, version, \
                       entitlements_version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: TenantId,
    name: String,
    slug: String,
    state: String,
    plan: String,
    created_by: UserId,
    suspended_reason: String,
    version: i64,
    entitlements_version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for Tenant {
    type Error = Error;
    fn try_from(row: Row) -> Result<Tenant, Error> {
        Ok(Tenant {
            id: row.id,
            name: row.name,
            slug: row.slug,
            state: TenantState::from_db(&row.state)?,
            plan: row.plan,
            created_by: row.created_by,
            suspended_reason: row.suspended_reason,
            version: row.version,
            entitlements_version: row.entitlements_version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn tenants(rows: Vec<Row>) -> Result<Vec<Tenant>, Error> {
    rows.into_iter().map(Tenant::try_from).collect()
}

/// Insert a new tenant pending approval. CONFLICT naming the slug when it is taken.
#[tracing::instrument(skip_all, fields(tenant_id = %id))]
pub async fn insert(
    tx: &mut Tx,
    id: TenantId,
    new: &NewTenant,
    plan: &str,
    creator: UserId,
) -> Result<Tenant, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO tenants (id, name, slug, state, plan, created_by) VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(new.name.as_str())
    .bind(new.slug.as_str())
    .bind(TenantState::PendingApproval.as_str())
    .bind(plan)
    .bind(creator)
    .fetch_one(&mut **tx)
    .await
    .map_err(|err| {
        if violates(&err, "tenants_slug_key") {
            Error::conflict(format!("the slug `{}` is already taken", new.slug)).with_cause(err)
        } else {
            Error::from(err)
        }
    })?;
    row.try_into()
}

pub async fn get(tx: &mut Tx, id: TenantId) -> Result<Option<Tenant>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(Tenant::try_from).transpose()
}

/// The tenant, locked until the transaction ends: every change to a tenant's lifecycle, members,
/// modules or flags takes this lock first, so such changes are serialised per tenant (this is what
/// makes "the last owner" a safe check).
pub async fn lock(tx: &mut Tx, id: TenantId) -> Result<Tenant, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Tenant::try_from)
        .transpose()?
        .ok_or_else(|| Error::not_found("tenant", id))
}

/// Move a tenant to `state`; bumps its version and its entitlements version.
#[tracing::instrument(skip_all, fields(tenant_id = %id, state = state.as_str()))]
pub async fn set_state(
    tx: &mut Tx,
    id: TenantId,
    state: TenantState,
    reason: Option<&str>,
) -> Result<Tenant, Error> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE tenants SET state = $2, suspended_reason = COALESCE($3, suspended_reason), \
                version = version + 1, entitlements_version = entitlements_version + 1, updated_at = now() \
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(state.as_str())
    .bind(reason)
    .fetch_one(&mut **tx)
    .await?;
    row.try_into()
}

/// The next number of the tenant's membership sequence (the version of a member event).
pub async fn next_members_version(tx: &mut Tx, id: TenantId) -> Result<i64, Error> {
    let (version,): (i64,) =
        sqlx::query_as("UPDATE tenants SET members_version = members_version + 1 WHERE id = $1 RETURNING members_version")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(version)
}

/// Record a change to the tenant's entitlements; returns the new entitlements version.
pub async fn bump_entitlements(tx: &mut Tx, id: TenantId) -> Result<i64, Error> {
    let (version,): (i64,) = sqlx::query_as(
        "UPDATE tenants SET entitlements_version = entitlements_version + 1, updated_at = now() \
          WHERE id = $1 RETURNING entitlements_version",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(version)
}

/// The tenants `user` is a member of, oldest first. Run in the user's `user_tx`: the membership
/// table's policy admits exactly that user's rows. Without a state filter, deleted tenants are left
/// out.
#[tracing::instrument(skip_all, fields(user_id = %user))]
pub async fn list_for_user(
    tx: &mut Tx,
    user: UserId,
    state: Option<TenantState>,
    after: After,
    limit: i64,
) -> Result<Vec<Tenant>, Error> {
    let (after_time, after_id) = after.unzip();
    let columns = COLUMNS
        .split(", ")
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {columns} FROM tenants t JOIN memberships m ON m.tenant_id = t.id \
          WHERE m.user_id = $1 \
            AND (CASE WHEN $2::text IS NULL THEN t.state <> 'deleted' ELSE t.state = $2 END) \
            AND ($3::timestamptz IS NULL OR (t.created_at, t.id) > ($3, $4)) \
          ORDER BY t.created_at, t.id LIMIT $5"
    ))
    .bind(user)
    .bind(state.map(TenantState::as_str))
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    tenants(rows)
}

/// Every tenant, oldest first (platform admins only; the caller checks).
pub async fn list_all(
    tx: &mut Tx,
    state: Option<TenantState>,
    after: After,
    limit: i64,
) -> Result<Vec<Tenant>, Error> {
    let (after_time, after_id) = after.unzip();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tenants \
          WHERE (CASE WHEN $1::text IS NULL THEN state <> 'deleted' ELSE state = $1 END) \
            AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) \
          ORDER BY created_at, id LIMIT $4"
    ))
    .bind(state.map(TenantState::as_str))
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    tenants(rows)
}
