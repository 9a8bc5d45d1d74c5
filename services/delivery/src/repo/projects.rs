//! `projects`.

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId};

use crate::domain::{Project, ProjectId};

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: ProjectId,
    name: String,
    description: String,
    archived: bool,
    created_by: String,
    required_approvals: i32,
    approval_sla_seconds: Option<i64>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Project {
    fn from(row: Row) -> Self {
        Project {
            id: row.id,
            tenant_id: row.tenant_id,
            name: row.name,
            description: row.description,
            archived: row.archived,
            created_by: row.created_by,
            required_approvals: row.required_approvals,
            approval_sla: row.approval_sla_seconds.map(chrono::Duration::seconds),
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const COLUMNS: &str = "tenant_id, id, name, description, archived, created_by, required_approvals, \
    approval_sla_seconds, version, created_at, updated_at";

pub async fn insert(tx: &mut TenantTx, project: &Project) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO projects (tenant_id, id, name, description, archived, created_by, \
         required_approvals, approval_sla_seconds, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(tx.tenant())
    .bind(project.id)
    .bind(&project.name)
    .bind(&project.description)
    .bind(project.archived)
    .bind(&project.created_by)
    .bind(project.required_approvals)
    .bind(project.approval_sla.map(|d| d.num_seconds()))
    .bind(project.version)
    .bind(project.created_at)
    .bind(project.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get(tx: &mut TenantTx, id: ProjectId) -> Result<Project, Error> {
    fetch(tx, id, "").await
}

/// The project, locked until the transaction ends.
pub async fn lock(tx: &mut TenantTx, id: ProjectId) -> Result<Project, Error> {
    fetch(tx, id, " FOR UPDATE").await
}

async fn fetch(tx: &mut TenantTx, id: ProjectId, suffix: &str) -> Result<Project, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projects WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL{suffix}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Project::from)
        .ok_or_else(|| Error::not_found("project", id))
}

pub async fn update(tx: &mut TenantTx, project: &Project) -> Result<(), Error> {
    sqlx::query(
        "UPDATE projects SET name = $3, description = $4, archived = $5, required_approvals = $6, \
         approval_sla_seconds = $7, version = $8, updated_at = $9 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tx.tenant())
    .bind(project.id)
    .bind(&project.name)
    .bind(&project.description)
    .bind(project.archived)
    .bind(project.required_approvals)
    .bind(project.approval_sla.map(|d| d.num_seconds()))
    .bind(project.version)
    .bind(project.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Newest first.
pub async fn list(
    tx: &mut TenantTx,
    show_archived: bool,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Project>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projects WHERE tenant_id = $1 AND deleted_at IS NULL \
         AND ($2 OR NOT archived) \
         AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(tx.tenant())
    .bind(show_archived)
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Project::from).collect())
}

pub async fn soft_delete(
    tx: &mut TenantTx,
    id: ProjectId,
    at: DateTime<Utc>,
    purge_at: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE projects SET deleted_at = $3, purge_at = $4, version = version + 1, updated_at = $3 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tx.tenant())
    .bind(id)
    .bind(at)
    .bind(purge_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Erase a deleted project and everything in it; false when there is nothing (left) to purge.
pub async fn purge(tx: &mut TenantTx, id: ProjectId) -> Result<bool, Error> {
    let done = sqlx::query(
        "DELETE FROM projects WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NOT NULL",
    )
    .bind(tx.tenant())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The next number of the project's task-change sequence. The row stays locked until the
/// transaction ends, so changes commit in sequence order. NOT_FOUND once the project is deleted
/// (a move racing a DeleteProject loses).
pub async fn next_change(tx: &mut TenantTx, id: ProjectId) -> Result<i64, Error> {
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE projects SET change_seq = change_seq + 1 WHERE tenant_id = $1 AND id = $2 \
         AND deleted_at IS NULL RETURNING change_seq",
    )
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|(sequence,)| sequence)
        .ok_or_else(|| Error::not_found("project", id))
}
