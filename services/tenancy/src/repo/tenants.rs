//! The tenant registry: a global table (its key is the tenant itself, no row-level security).
//! Functions about one tenant take that tenant's `TenantTx` and act on `tx.tenant()`, so a handler
//! cannot lock or change a tenant other than the one it authorised and scoped; the lists across
//! tenants take a plain connection (`user_tx` or `unscoped_tx`).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId, UserId};
use sqlx::PgConnection;

use crate::domain::{NewTenant, Tenant, TenantChanges, TenantName, TenantState};

const COLUMNS: &str = "id, name, slug, state, plan, created_by, suspended_reason, default_locale, \
                       version, entitlements_version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: TenantId,
    name: String,
    slug: String,
    state: TenantState,
    plan: String,
    created_by: UserId,
    suspended_reason: String,
    default_locale: String,
    version: i64,
    entitlements_version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Tenant {
    fn from(row: Row) -> Tenant {
        Tenant {
            id: row.id,
            name: row.name,
            slug: row.slug,
            state: row.state,
            plan: row.plan,
            created_by: row.created_by,
            suspended_reason: row.suspended_reason,
            default_locale: row.default_locale,
            version: row.version,
            entitlements_version: row.entitlements_version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

fn tenants(rows: Vec<Row>) -> Vec<Tenant> {
    rows.into_iter().map(Tenant::from).collect()
}

/// Insert the transaction's tenant, pending approval. CONFLICT naming the slug when it is taken.
#[tracing::instrument(skip_all, fields(tenant_id = %tx.tenant()))]
pub async fn insert(
    tx: &mut TenantTx,
    new: &NewTenant,
    plan: &str,
    creator: UserId,
) -> Result<Tenant, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO tenants (id, name, slug, state, plan, created_by, default_locale) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(new.name.as_str())
    .bind(new.slug.as_str())
    .bind(TenantState::PendingApproval)
    .bind(plan)
    .bind(creator)
    .bind(&new.default_locale)
    .fetch_one(&mut **tx)
    .await
    .map_err(|err| {
        Error::from(err).on_constraint(
            "tenants_slug_key",
            format!("the slug `{}` is already taken", new.slug),
        )
    })?;
    Ok(row.into())
}

/// The transaction's tenant, if it exists.
pub async fn get(tx: &mut TenantTx) -> Result<Option<Tenant>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"))
        .bind(tx.tenant())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(Tenant::from))
}

/// The tenant, locked until the transaction ends: every change to a tenant's lifecycle, members,
/// modules or flags takes this lock first, so such changes are serialised per tenant (this is what
/// makes "the last owner" a safe check).
pub async fn lock(tx: &mut TenantTx) -> Result<Tenant, Error> {
    let id = tx.tenant();
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Tenant::from)
        .ok_or_else(|| Error::not_found("tenant", id))
}

/// Move a tenant to `state`; bumps its version and its entitlements version.
#[tracing::instrument(skip_all, fields(tenant_id = %tx.tenant(), state = ?state))]
pub async fn set_state(
    tx: &mut TenantTx,
    state: TenantState,
    reason: Option<&str>,
) -> Result<Tenant, Error> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE tenants SET state = $2, suspended_reason = COALESCE($3, suspended_reason), \
                version = version + 1, entitlements_version = entitlements_version + 1, updated_at = now() \
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(state)
    .bind(reason)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// Apply UpdateTenant's changes to the transaction's tenant; bumps its version (the version of
/// the `tenancy.tenant.updated` event that announces them).
pub async fn update(tx: &mut TenantTx, changes: &TenantChanges) -> Result<Tenant, Error> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE tenants SET name = COALESCE($2, name), default_locale = COALESCE($3, default_locale), \
                version = version + 1, updated_at = now() \
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(changes.name.as_ref().map(TenantName::as_str))
    .bind(changes.default_locale.as_deref())
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// The next number of the tenant's membership sequence (the version of a member event).
pub async fn next_members_version(tx: &mut TenantTx) -> Result<i64, Error> {
    let (version,): (i64,) =
        sqlx::query_as("UPDATE tenants SET members_version = members_version + 1 WHERE id = $1 RETURNING members_version")
            .bind(tx.tenant())
            .fetch_one(&mut **tx)
            .await?;
    Ok(version)
}

/// Record a change to the tenant's entitlements; returns the new entitlements version.
pub async fn bump_entitlements(tx: &mut TenantTx) -> Result<i64, Error> {
    let (version,): (i64,) = sqlx::query_as(
        "UPDATE tenants SET entitlements_version = entitlements_version + 1, updated_at = now() \
          WHERE id = $1 RETURNING entitlements_version",
    )
    .bind(tx.tenant())
    .fetch_one(&mut **tx)
    .await?;
    Ok(version)
}

/// Record the plan billing says is in force, if `version` is newer than the last one applied.
/// False for a stale (or repeated) change, which must have no effect.
pub async fn apply_plan(tx: &mut TenantTx, plan: &str, version: i64) -> Result<bool, Error> {
    let applied = sqlx::query(
        "UPDATE tenants SET plan = $2, plan_version = $3, updated_at = now() \
          WHERE id = $1 AND plan_version < $3",
    )
    .bind(tx.tenant())
    .bind(plan)
    .bind(version)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(applied == 1)
}

/// The tenants `user` is a member of, oldest first. Run in the user's `user_tx`: the membership
/// table's policy admits exactly that user's rows. Without a state filter, deleted tenants are left
/// out.
#[tracing::instrument(skip_all, fields(user_id = %user))]
pub async fn list_for_user(
    conn: &mut PgConnection,
    user: UserId,
    state: Option<TenantState>,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Tenant>, Error> {
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
    .bind(state)
    .bind(after.map(|cursor| cursor.at))
    .bind(after.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(tenants(rows))
}

/// Every tenant, oldest first (platform admins only; the caller checks).
pub async fn list_all(
    conn: &mut PgConnection,
    state: Option<TenantState>,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Tenant>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tenants \
          WHERE (CASE WHEN $1::text IS NULL THEN state <> 'deleted' ELSE state = $1 END) \
            AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) \
          ORDER BY created_at, id LIMIT $4"
    ))
    .bind(state)
    .bind(after.map(|cursor| cursor.at))
    .bind(after.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(tenants(rows))
}
