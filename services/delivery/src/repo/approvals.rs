//! `approvals`: append-only (inserted, never updated).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::{Error, TenantId, UserId};

use crate::domain::{Approval, ApprovalId, Decision, TaskId};

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: ApprovalId,
    task_id: TaskId,
    position: i32,
    submission: i32,
    decision: Decision,
    reviewer_id: UserId,
    comment: String,
    created_at: DateTime<Utc>,
}

impl From<Row> for Approval {
    fn from(row: Row) -> Self {
        Approval {
            id: row.id,
            tenant_id: row.tenant_id,
            task_id: row.task_id,
            position: row.position,
            submission: row.submission,
            decision: row.decision,
            reviewer: row.reviewer_id,
            comment: row.comment,
            created_at: row.created_at,
        }
    }
}

/// Append a decision at the end of the task's history (the caller holds the task's lock).
pub async fn append(tx: &mut TenantTx, approval: &Approval) -> Result<i32, Error> {
    let (position,): (i32,) = sqlx::query_as(
        "INSERT INTO approvals (tenant_id, id, task_id, position, submission, decision, reviewer_id, \
         comment, created_at) \
         SELECT $1, $2, $3, COALESCE(MAX(position), 0) + 1, $4, $5, $6, $7, $8 \
         FROM approvals WHERE tenant_id = $1 AND task_id = $3 RETURNING position",
    )
    .bind(tx.tenant())
    .bind(approval.id)
    .bind(approval.task_id)
    .bind(approval.submission)
    .bind(approval.decision)
    .bind(approval.reviewer)
    .bind(&approval.comment)
    .bind(approval.created_at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(position)
}

/// Whether `reviewer` already approved the task's `submission`.
pub async fn approved_by(
    tx: &mut TenantTx,
    task: TaskId,
    submission: i32,
    reviewer: UserId,
) -> Result<bool, Error> {
    let (approved,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM approvals WHERE tenant_id = $1 AND task_id = $2 \
         AND submission = $3 AND reviewer_id = $4 AND decision = 'approved')",
    )
    .bind(tx.tenant())
    .bind(task)
    .bind(submission)
    .bind(reviewer)
    .fetch_one(&mut **tx)
    .await?;
    Ok(approved)
}

/// In decision order, after position `after`.
pub async fn list(
    tx: &mut TenantTx,
    task: TaskId,
    after: i32,
    limit: i64,
) -> Result<Vec<Approval>, Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT tenant_id, id, task_id, position, submission, decision, reviewer_id, comment, created_at \
         FROM approvals WHERE tenant_id = $1 AND task_id = $2 AND position > $3 \
         ORDER BY position LIMIT $4",
    )
    .bind(tx.tenant())
    .bind(task)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Approval::from).collect())
}
