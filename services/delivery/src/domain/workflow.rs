//! The task workflow: ONE table of arrows (from state × move → to state, and who may make the
//! move). Every state change goes through [`plan`]; anything not in the table is
//! FAILED_PRECONDITION naming the current state and the moves allowed from it. The API tests
//! generate every arrow and every forbidden arrow from [`WORKFLOW`].

use keel_kernel::{Error, UserId};
use serde::{Deserialize, Serialize};

use super::task::{Task, TaskState};

/// A custom method that moves a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Move {
    Assign,
    Start,
    Submit,
    Approve,
    Reject,
    Complete,
}

impl Move {
    pub const ALL: [Move; 6] = [
        Move::Assign,
        Move::Start,
        Move::Submit,
        Move::Approve,
        Move::Reject,
        Move::Complete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Move::Assign => "assign",
            Move::Start => "start",
            Move::Submit => "submit",
            Move::Approve => "approve",
            Move::Reject => "reject",
            Move::Complete => "complete",
        }
    }
}

/// Who may make a move (on top of the RPC's permission, which the handler checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Anyone holding `delivery.task.assign`.
    Assigner,
    /// The task's assignee only.
    Assignee,
    /// A holder of `delivery.task.approve` who is not the assignee (four eyes).
    Approver,
    /// Anyone holding `delivery.task.update`.
    Editor,
}

/// One arrow of the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrow {
    pub from: TaskState,
    pub by: Move,
    pub to: TaskState,
    pub who: Who,
}

const fn arrow(from: TaskState, by: Move, to: TaskState, who: Who) -> Arrow {
    Arrow { from, by, to, who }
}

use TaskState::{Approved, Assigned, Completed, Draft, InProgress, PendingApproval, Rejected};

/// The whole workflow. With a project's `required_approvals` N > 1, `approve` keeps the task in
/// PENDING_APPROVAL until the N-th distinct approver ([`Task::state_after`]).
pub const WORKFLOW: &[Arrow] = &[
    arrow(Draft, Move::Assign, Assigned, Who::Assigner),
    arrow(Assigned, Move::Assign, Assigned, Who::Assigner),
    arrow(InProgress, Move::Assign, Assigned, Who::Assigner),
    arrow(Rejected, Move::Assign, Assigned, Who::Assigner),
    arrow(Assigned, Move::Start, InProgress, Who::Assignee),
    arrow(Rejected, Move::Start, InProgress, Who::Assignee),
    arrow(InProgress, Move::Submit, PendingApproval, Who::Assignee),
    arrow(PendingApproval, Move::Approve, Approved, Who::Approver),
    arrow(PendingApproval, Move::Reject, Rejected, Who::Approver),
    arrow(Approved, Move::Complete, Completed, Who::Editor),
];

/// The arrow for `by` out of `from`, if the workflow has one.
pub fn find(from: TaskState, by: Move) -> Option<&'static Arrow> {
    WORKFLOW.iter().find(|a| a.from == from && a.by == by)
}

/// The moves allowed out of `from`, in table order.
pub fn allowed_moves(from: TaskState) -> Vec<Move> {
    WORKFLOW
        .iter()
        .filter(|a| a.from == from)
        .map(|a| a.by)
        .collect()
}

/// A move someone attempts.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub by: Move,
    /// The calling user.
    pub actor: UserId,
    /// The new assignee (`assign` only).
    pub assignee: Option<UserId>,
    /// Whether the caller already approved in the current round (`approve` only).
    pub already_approved: bool,
}

/// What an attempt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Apply the arrow.
    Apply(&'static Arrow),
    /// The same caller re-sent the move that produced the current state: nothing changes.
    Unchanged,
}

/// Decide an attempt on `task`: a re-send is [`Plan::Unchanged`]; a move the table does not
/// have from the current state is FAILED_PRECONDITION; a move by the wrong person is
/// PERMISSION_DENIED. The task itself is not touched.
pub fn plan(task: &Task, attempt: &Attempt) -> Result<Plan, Error> {
    if is_resend(task, attempt) {
        return Ok(Plan::Unchanged);
    }
    let Some(arrow) = find(task.state, attempt.by) else {
        return Err(refused(task.state, attempt.by));
    };
    match arrow.who {
        Who::Assigner | Who::Editor => {}
        Who::Assignee => {
            if task.assignee != Some(attempt.actor) {
                return Err(Error::forbidden(format!(
                    "only the task's assignee may {} it",
                    attempt.by.name()
                )));
            }
        }
        Who::Approver => {
            if task.assignee == Some(attempt.actor) {
                return Err(Error::forbidden(format!(
                    "four eyes: the assignee may not {} their own work",
                    attempt.by.name()
                )));
            }
        }
    }
    Ok(Plan::Apply(arrow))
}

/// The FAILED_PRECONDITION for `by` out of `state`, naming the state and what is allowed.
pub fn refused(state: TaskState, by: Move) -> Error {
    let allowed: Vec<&str> = allowed_moves(state).into_iter().map(Move::name).collect();
    let allowed = if allowed.is_empty() {
        "none (terminal state)".to_owned()
    } else {
        allowed.join(", ")
    };
    Error::failed_precondition(format!(
        "cannot {} a task in state {}; allowed moves from {}: {allowed}",
        by.name(),
        state.api_name(),
        state.api_name()
    ))
}

fn is_resend(task: &Task, attempt: &Attempt) -> bool {
    let by_same_caller = task.last_actor == Some(attempt.actor);
    match attempt.by {
        // A second approval by the same approver in one round changes nothing.
        Move::Approve if task.state == PendingApproval => attempt.already_approved,
        Move::Assign => {
            task.state == Assigned
                && task.last_move == Some(Move::Assign)
                && by_same_caller
                && task.assignee == attempt.assignee
        }
        by => {
            task.last_move == Some(by)
                && by_same_caller
                && WORKFLOW.iter().any(|a| a.by == by && a.to == task.state)
        }
    }
}
