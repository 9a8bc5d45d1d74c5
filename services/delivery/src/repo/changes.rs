//! `task_changes`: each project's task changes in commit order, for the watch stream.

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::{Error, EventId};
use sqlx::types::Json;

use crate::domain::{ProjectId, Task};

/// One change as the watch stream sends it.
#[derive(Debug, Clone)]
pub struct Change {
    pub sequence: i64,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub task: Task,
    pub occurred_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    sequence: i64,
    event_id: uuid::Uuid,
    event_type: String,
    task: Json<Task>,
    occurred_at: DateTime<Utc>,
}

pub async fn append(
    tx: &mut TenantTx,
    sequence: i64,
    event_id: EventId,
    event_type: &str,
    task: &Task,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO task_changes (tenant_id, project_id, sequence, event_id, event_type, task_id, \
         task, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tx.tenant())
    .bind(task.project_id)
    .bind(sequence)
    .bind(event_id)
    .bind(event_type)
    .bind(task.id)
    .bind(Json(task))
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The project's changes after `sequence`, oldest first.
pub async fn after(
    tx: &mut TenantTx,
    project: ProjectId,
    sequence: i64,
    limit: i64,
) -> Result<Vec<Change>, Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT sequence, event_id, event_type, task, occurred_at FROM task_changes \
         WHERE tenant_id = $1 AND project_id = $2 AND sequence > $3 ORDER BY sequence LIMIT $4",
    )
    .bind(tx.tenant())
    .bind(project)
    .bind(sequence)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Change {
            sequence: row.sequence,
            event_id: row.event_id,
            event_type: row.event_type,
            task: row.task.0,
            occurred_at: row.occurred_at,
        })
        .collect())
}

/// The sequence of the project's change `event_id`, if it is one.
pub async fn sequence_of(
    tx: &mut TenantTx,
    project: ProjectId,
    event_id: uuid::Uuid,
) -> Result<Option<i64>, Error> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT sequence FROM task_changes WHERE tenant_id = $1 AND project_id = $2 AND event_id = $3",
    )
    .bind(tx.tenant())
    .bind(project)
    .bind(event_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(s,)| s))
}

/// The project's last change sequence (0 when none).
pub async fn last(tx: &mut TenantTx, project: ProjectId) -> Result<i64, Error> {
    let (last,): (Option<i64>,) = sqlx::query_as(
        "SELECT MAX(sequence) FROM task_changes WHERE tenant_id = $1 AND project_id = $2",
    )
    .bind(tx.tenant())
    .bind(project)
    .fetch_one(&mut **tx)
    .await?;
    Ok(last.unwrap_or(0))
}
