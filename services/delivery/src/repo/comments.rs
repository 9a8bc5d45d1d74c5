//! `comments`.

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId};

use crate::domain::{Comment, CommentId, TaskId};

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: CommentId,
    task_id: TaskId,
    author_id: String,
    body: String,
    created_at: DateTime<Utc>,
}

impl From<Row> for Comment {
    fn from(row: Row) -> Self {
        Comment {
            id: row.id,
            tenant_id: row.tenant_id,
            task_id: row.task_id,
            author_id: row.author_id,
            body: row.body,
            created_at: row.created_at,
        }
    }
}

pub async fn insert(tx: &mut TenantTx, comment: &Comment) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO comments (tenant_id, id, task_id, author_id, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tx.tenant())
    .bind(comment.id)
    .bind(comment.task_id)
    .bind(&comment.author_id)
    .bind(&comment.body)
    .bind(comment.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Oldest first.
pub async fn list(
    tx: &mut TenantTx,
    task: TaskId,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Comment>, Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT tenant_id, id, task_id, author_id, body, created_at FROM comments \
         WHERE tenant_id = $1 AND task_id = $2 \
         AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4)) \
         ORDER BY created_at, id LIMIT $5",
    )
    .bind(tx.tenant())
    .bind(task)
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Comment::from).collect())
}
