//! `tasks`.

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId, UserId};

use crate::domain::{Move, ProjectId, Task, TaskId, TaskState};
use keel_kernel::search;

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: TaskId,
    project_id: ProjectId,
    title: String,
    description: String,
    state: TaskState,
    assignee_id: Option<UserId>,
    created_by: String,
    due_at: Option<DateTime<Utc>>,
    version: i64,
    submissions: i32,
    approvals: i32,
    submitted_at: Option<DateTime<Utc>>,
    last_move: Option<Move>,
    last_actor: Option<UserId>,
    overdue_raised_for: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

impl From<Row> for Task {
    fn from(row: Row) -> Self {
        Task {
            id: row.id,
            tenant_id: row.tenant_id,
            project_id: row.project_id,
            title: row.title,
            description: row.description,
            state: row.state,
            assignee: row.assignee_id,
            created_by: row.created_by,
            due_at: row.due_at,
            version: row.version,
            submissions: row.submissions,
            approvals: row.approvals,
            submitted_at: row.submitted_at,
            last_move: row.last_move,
            last_actor: row.last_actor,
            overdue_raised_for: row.overdue_raised_for,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
        }
    }
}

const COLUMNS: &str = "tenant_id, id, project_id, title, description, state, assignee_id, \
    created_by, due_at, version, submissions, approvals, submitted_at, last_move, last_actor, \
    overdue_raised_for, created_at, updated_at, deleted_at";

pub async fn insert(tx: &mut TenantTx, task: &Task) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO tasks (tenant_id, id, project_id, title, description, state, assignee_id, \
         created_by, due_at, version, submissions, approvals, submitted_at, last_move, last_actor, \
         overdue_raised_for, created_at, updated_at, search_text) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(tx.tenant())
    .bind(task.id)
    .bind(task.project_id)
    .bind(&task.title)
    .bind(&task.description)
    .bind(task.state)
    .bind(task.assignee)
    .bind(&task.created_by)
    .bind(task.due_at)
    .bind(task.version)
    .bind(task.submissions)
    .bind(task.approvals)
    .bind(task.submitted_at)
    .bind(task.last_move)
    .bind(task.last_actor)
    .bind(task.overdue_raised_for)
    .bind(task.created_at)
    .bind(task.updated_at)
    .bind(search::document(&[&task.title, &task.description]))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Write every mutable column of `task` (and its search text).
pub async fn save(tx: &mut TenantTx, task: &Task) -> Result<(), Error> {
    sqlx::query(
        "UPDATE tasks SET title = $3, description = $4, state = $5, assignee_id = $6, due_at = $7, \
         version = $8, submissions = $9, approvals = $10, submitted_at = $11, last_move = $12, \
         last_actor = $13, overdue_raised_for = $14, updated_at = $15, deleted_at = $16, \
         search_text = $17 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tx.tenant())
    .bind(task.id)
    .bind(&task.title)
    .bind(&task.description)
    .bind(task.state)
    .bind(task.assignee)
    .bind(task.due_at)
    .bind(task.version)
    .bind(task.submissions)
    .bind(task.approvals)
    .bind(task.submitted_at)
    .bind(task.last_move)
    .bind(task.last_actor)
    .bind(task.overdue_raised_for)
    .bind(task.updated_at)
    .bind(task.deleted_at)
    .bind(search::document(&[&task.title, &task.description]))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get(tx: &mut TenantTx, project: ProjectId, id: TaskId) -> Result<Task, Error> {
    fetch(tx, project, id, "").await
}

/// The task, locked until the transaction ends: every change of a task takes this lock first,
/// so concurrent moves are serialized.
pub async fn lock(tx: &mut TenantTx, project: ProjectId, id: TaskId) -> Result<Task, Error> {
    fetch(tx, project, id, " FOR UPDATE").await
}

async fn fetch(
    tx: &mut TenantTx,
    project: ProjectId,
    id: TaskId,
    suffix: &str,
) -> Result<Task, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks t WHERE tenant_id = $1 AND id = $2 AND project_id = $3 \
         AND deleted_at IS NULL AND EXISTS (SELECT 1 FROM projects p WHERE p.tenant_id = t.tenant_id \
         AND p.id = t.project_id AND p.deleted_at IS NULL){suffix}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(project)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Task::from)
        .ok_or_else(|| Error::not_found("task", id))
}

/// A task by id alone (jobs), locked; None when deleted or gone.
pub async fn lock_any(tx: &mut TenantTx, id: TaskId) -> Result<Option<Task>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks t WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL \
         AND EXISTS (SELECT 1 FROM projects p WHERE p.tenant_id = t.tenant_id \
         AND p.id = t.project_id AND p.deleted_at IS NULL) FOR UPDATE"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Task::from))
}

/// What a task list is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<TaskState>,
    pub assignee: Option<UserId>,
    /// Words for full-text search ([`search::query`] applied).
    pub query: Option<String>,
}

/// Most recently updated first.
pub async fn list(
    tx: &mut TenantTx,
    project: ProjectId,
    filter: &Filter,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Task>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE tenant_id = $1 AND project_id = $2 AND deleted_at IS NULL \
         AND ($3::text IS NULL OR state = $3) \
         AND ($4::uuid IS NULL OR assignee_id = $4) \
         AND ($5::text IS NULL OR search @@ plainto_tsquery('simple', $5)) \
         AND ($6::timestamptz IS NULL OR (updated_at, id) < ($6, $7)) \
         ORDER BY updated_at DESC, id DESC LIMIT $8"
    ))
    .bind(tx.tenant())
    .bind(project)
    .bind(filter.state)
    .bind(filter.assignee)
    .bind(filter.query.as_deref().and_then(search::query))
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Task::from).collect())
}

/// `user`'s tasks still in hand (ASSIGNED, IN_PROGRESS, REJECTED), locked.
pub async fn lock_open_work_of(tx: &mut TenantTx, user: UserId) -> Result<Vec<Task>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE tenant_id = $1 AND assignee_id = $2 AND deleted_at IS NULL \
         AND state IN ('assigned', 'in_progress', 'rejected') ORDER BY id FOR UPDATE"
    ))
    .bind(tx.tenant())
    .bind(user)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Task::from).collect())
}

/// Whether a task of `project` waits for an approval decision.
pub async fn any_pending_approval(tx: &mut TenantTx, project: ProjectId) -> Result<bool, Error> {
    let (pending,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE tenant_id = $1 AND project_id = $2 \
         AND deleted_at IS NULL AND state = 'pending_approval')",
    )
    .bind(tx.tenant())
    .bind(project)
    .fetch_one(&mut **tx)
    .await?;
    Ok(pending)
}
