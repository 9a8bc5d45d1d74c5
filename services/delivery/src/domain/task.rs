//! Tasks, their states, comments and approval decisions.

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId, UserId};
use keel_proto::delivery::v1 as pb;
use serde::{Deserialize, Serialize};

use super::ids::{ApprovalId, CommentId, ProjectId, TaskId};
use super::workflow::Move;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Draft,
    Assigned,
    InProgress,
    PendingApproval,
    Approved,
    Rejected,
    Completed,
}

impl TaskState {
    pub const ALL: [TaskState; 7] = [
        TaskState::Draft,
        TaskState::Assigned,
        TaskState::InProgress,
        TaskState::PendingApproval,
        TaskState::Approved,
        TaskState::Rejected,
        TaskState::Completed,
    ];

    /// The state as the API spells it (`IN_PROGRESS`), for messages.
    pub fn api_name(self) -> &'static str {
        match self {
            TaskState::Draft => "DRAFT",
            TaskState::Assigned => "ASSIGNED",
            TaskState::InProgress => "IN_PROGRESS",
            TaskState::PendingApproval => "PENDING_APPROVAL",
            TaskState::Approved => "APPROVED",
            TaskState::Rejected => "REJECTED",
            TaskState::Completed => "COMPLETED",
        }
    }

    /// Work the assignee still holds: goes back to DRAFT when the assignee leaves the tenant.
    pub fn is_open_work(self) -> bool {
        matches!(
            self,
            TaskState::Assigned | TaskState::InProgress | TaskState::Rejected
        )
    }

    /// The filter of a list request (UNSPECIFIED: none).
    pub fn parse_filter(field: &str, value: i32) -> Result<Option<TaskState>, Error> {
        match pb::TaskState::try_from(value) {
            Ok(pb::TaskState::Unspecified) => Ok(None),
            Ok(state) => Ok(Some(TaskState::from(state))),
            Err(_) => Err(Error::invalid(field, format!("unknown task state {value}"))),
        }
    }
}

impl From<TaskState> for pb::TaskState {
    fn from(state: TaskState) -> Self {
        match state {
            TaskState::Draft => pb::TaskState::Draft,
            TaskState::Assigned => pb::TaskState::Assigned,
            TaskState::InProgress => pb::TaskState::InProgress,
            TaskState::PendingApproval => pb::TaskState::PendingApproval,
            TaskState::Approved => pb::TaskState::Approved,
            TaskState::Rejected => pb::TaskState::Rejected,
            TaskState::Completed => pb::TaskState::Completed,
        }
    }
}

impl From<pb::TaskState> for TaskState {
    /// UNSPECIFIED is never stored; callers filter it out first ([`TaskState::parse_filter`]).
    fn from(state: pb::TaskState) -> Self {
        match state {
            pb::TaskState::Unspecified | pb::TaskState::Draft => TaskState::Draft,
            pb::TaskState::Assigned => TaskState::Assigned,
            pb::TaskState::InProgress => TaskState::InProgress,
            pb::TaskState::PendingApproval => TaskState::PendingApproval,
            pb::TaskState::Approved => TaskState::Approved,
            pb::TaskState::Rejected => TaskState::Rejected,
            pb::TaskState::Completed => TaskState::Completed,
        }
    }
}

/// A task as stored (and as the watch stream's change log keeps it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub tenant_id: TenantId,
    pub project_id: ProjectId,
    pub title: String,
    pub description: String,
    pub state: TaskState,
    pub assignee: Option<UserId>,
    pub created_by: String,
    pub due_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub submissions: i32,
    pub approvals: i32,
    pub submitted_at: Option<DateTime<Utc>>,
    pub last_move: Option<Move>,
    pub last_actor: Option<UserId>,
    pub overdue_raised_for: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Task {
    /// The state `arrow_to` really leads to: an approval short of the project's
    /// `required_approvals` keeps the task PENDING_APPROVAL.
    pub fn state_after(&self, by: Move, arrow_to: TaskState, required_approvals: i32) -> TaskState {
        if by == Move::Approve && self.approvals + 1 < required_approvals {
            TaskState::PendingApproval
        } else {
            arrow_to
        }
    }
}

pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;
pub const MAX_COMMENT_CHARS: usize = 10_000;

/// A required single-line text of at most `max` characters, trimmed.
pub fn parse_title(field: &str, value: &str) -> Result<String, Error> {
    let title = value.trim();
    if title.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must be one line of text"));
    }
    Ok(title.to_owned())
}

/// Free text of at most `max` characters (`required`: not blank).
pub fn parse_text(field: &str, value: &str, max: usize, required: bool) -> Result<String, Error> {
    if required && value.trim().is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// A remark on a task.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: CommentId,
    pub tenant_id: TenantId,
    pub task_id: TaskId,
    pub author_id: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Rejected,
}

impl From<Decision> for pb::ApprovalDecision {
    fn from(decision: Decision) -> Self {
        match decision {
            Decision::Approved => pb::ApprovalDecision::Approved,
            Decision::Rejected => pb::ApprovalDecision::Rejected,
        }
    }
}

/// One entry of the append-only approval history.
#[derive(Debug, Clone)]
pub struct Approval {
    pub id: ApprovalId,
    pub tenant_id: TenantId,
    pub task_id: TaskId,
    pub position: i32,
    pub submission: i32,
    pub decision: Decision,
    pub reviewer: UserId,
    pub comment: String,
    pub created_at: DateTime<Utc>,
}
