//! The events delivery publishes, built from domain values, and the consumer of tenancy's member
//! events (`tenancy.rs`). Each event is written to the outbox in the transaction of the change it
//! reports.
//!
//! Aggregates and versions (consumers drop an event whose version is not above the last seen):
//! - `delivery.task.*`: aggregate id = task id, version = the task's version (its etag);
//! - `delivery.project.*`: aggregate id = project id, version = the project's version;
//! - `delivery.comment.added`: aggregate id = comment id, version 1.
//!
//! A task event is also appended to the project's change log (`repo::changes`) under the same
//! event id, in the same transaction: the watch stream replays that log after a resume point.

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::timestamp;
use keel_kernel::outbox::{NewEvent, Outbox};
use keel_kernel::{Actor, Caller, Error, EventId};
use keel_proto::delivery::v1 as pb;

use crate::domain::{Comment, Project, Task, TaskState};
use crate::repo;

pub mod tenancy;

pub const TASK_CREATED: &str = "delivery.task.created";
pub const TASK_UPDATED: &str = "delivery.task.updated";
pub const TASK_ASSIGNED: &str = "delivery.task.assigned";
pub const TASK_UNASSIGNED: &str = "delivery.task.unassigned";
pub const TASK_STARTED: &str = "delivery.task.started";
pub const TASK_SUBMITTED: &str = "delivery.task.submitted";
pub const TASK_APPROVAL_RECORDED: &str = "delivery.task.approval_recorded";
pub const TASK_APPROVED: &str = "delivery.task.approved";
pub const TASK_REJECTED: &str = "delivery.task.rejected";
pub const TASK_COMPLETED: &str = "delivery.task.completed";
pub const TASK_DELETED: &str = "delivery.task.deleted";
pub const TASK_OVERDUE: &str = "delivery.task.overdue";
pub const TASK_ESCALATED: &str = "delivery.task.escalated";
pub const PROJECT_CREATED: &str = "delivery.project.created";
pub const PROJECT_UPDATED: &str = "delivery.project.updated";
pub const PROJECT_ARCHIVED: &str = "delivery.project.archived";
pub const PROJECT_DELETED: &str = "delivery.project.deleted";
pub const PROJECT_PURGED: &str = "delivery.project.purged";
pub const COMMENT_ADDED: &str = "delivery.comment.added";

/// The subjects (under the stream prefix) of task events: what the watch stream follows.
pub const TASK_SUBJECTS: &str = "delivery.task.>";

/// Who caused an event: a request's caller, or the system (a job, a consumer) with the id of
/// what triggered it as correlation.
#[derive(Debug, Clone)]
pub struct Cause {
    actor: Actor,
    correlation: String,
}

impl Cause {
    pub fn of(caller: &Caller) -> Cause {
        Cause {
            actor: caller.actor(),
            correlation: caller.request_id().to_owned(),
        }
    }

    pub fn system(what: &str, correlation: &str) -> Cause {
        Cause {
            actor: Actor::system(what),
            correlation: correlation.to_owned(),
        }
    }

    fn stamp(&self, event: NewEvent) -> NewEvent {
        let event = event.actor(&self.actor);
        match self.correlation.as_str() {
            "" => event,
            id => event.correlation(id, id),
        }
    }
}

fn state(state: TaskState) -> i32 {
    pb::TaskState::from(state) as i32
}

fn user(id: Option<keel_kernel::UserId>) -> String {
    id.map(|u| u.to_string()).unwrap_or_default()
}

/// A task event of `event_type` about `task` as it is now (its version).
pub fn task_event<M: prost::Name>(
    event_type: &str,
    task: &Task,
    payload: &M,
) -> Result<NewEvent, Error> {
    Ok(NewEvent::new(event_type, task.id, payload)?
        .tenant(task.tenant_id)
        .version(task.version))
}

/// Enqueue a task event (from [`task_event`]) and append it to the project's change log, in
/// `tx`, under the same event id.
pub async fn task_changed(
    tx: &mut TenantTx,
    outbox: &Outbox,
    event: NewEvent,
    task: &Task,
    cause: &Cause,
    now: DateTime<Utc>,
) -> Result<EventId, Error> {
    let event_type = event.event_type().to_owned();
    let event_id = outbox.enqueue(tx, cause.stamp(event)).await?;
    let sequence = repo::projects::next_change(tx, task.project_id).await?;
    repo::changes::append(tx, sequence, event_id, &event_type, task, now).await?;
    Ok(event_id)
}

pub fn task_created(task: &Task) -> pb::TaskCreated {
    pb::TaskCreated {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        title: task.title.clone(),
        state: state(task.state),
        assignee_id: user(task.assignee),
        created_by: task.created_by.clone(),
        due_time: task.due_at.map(timestamp),
    }
}

pub fn task_updated(task: &Task, fields: &[&str]) -> pb::TaskUpdated {
    pb::TaskUpdated {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
    }
}

pub fn task_assigned(task: &Task, before: &Task) -> pb::TaskAssigned {
    pb::TaskAssigned {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        assignee_id: user(task.assignee),
        previous_assignee_id: user(before.assignee),
        previous_state: state(before.state),
    }
}

pub fn task_unassigned(task: &Task, before: &Task, reason: &str) -> pb::TaskUnassigned {
    pb::TaskUnassigned {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        previous_assignee_id: user(before.assignee),
        previous_state: state(before.state),
        reason: reason.to_owned(),
    }
}

pub fn task_started(task: &Task, before: &Task) -> pb::TaskStarted {
    pb::TaskStarted {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        assignee_id: user(task.assignee),
        previous_state: state(before.state),
    }
}

pub fn task_submitted(task: &Task, note: &str) -> pb::TaskSubmitted {
    pb::TaskSubmitted {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        assignee_id: user(task.assignee),
        note: note.to_owned(),
        submission: task.submissions,
    }
}

pub fn task_approved(
    task: &Task,
    reviewer: &str,
    comment: &str,
    required: i32,
) -> pb::TaskApproved {
    pb::TaskApproved {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        reviewer_id: reviewer.to_owned(),
        comment: comment.to_owned(),
        approvals: task.approvals,
        required_approvals: required,
    }
}

pub fn task_approval_recorded(
    task: &Task,
    reviewer: &str,
    comment: &str,
    required: i32,
) -> pb::TaskApprovalRecorded {
    pb::TaskApprovalRecorded {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        reviewer_id: reviewer.to_owned(),
        comment: comment.to_owned(),
        approvals: task.approvals,
        required_approvals: required,
    }
}

pub fn task_rejected(task: &Task, reviewer: &str, reason: &str) -> pb::TaskRejected {
    pb::TaskRejected {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        reviewer_id: reviewer.to_owned(),
        reason: reason.to_owned(),
    }
}

pub fn task_completed(task: &Task, by: &str) -> pb::TaskCompleted {
    pb::TaskCompleted {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        completed_by: by.to_owned(),
    }
}

pub fn task_deleted(task: &Task) -> pb::TaskDeleted {
    pb::TaskDeleted {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        state: state(task.state),
    }
}

pub fn task_overdue(task: &Task) -> pb::TaskOverdue {
    pb::TaskOverdue {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        assignee_id: user(task.assignee),
        state: state(task.state),
        due_time: task.due_at.map(timestamp),
    }
}

pub fn task_escalated(task: &Task, project: &Project) -> pb::TaskEscalated {
    pb::TaskEscalated {
        task_id: task.id.to_string(),
        project_id: task.project_id.to_string(),
        assignee_id: user(task.assignee),
        submit_time: task.submitted_at.map(timestamp),
        approval_sla: project.approval_sla.map(|sla| prost_types::Duration {
            seconds: sla.num_seconds(),
            nanos: 0,
        }),
        approvals: task.approvals,
        required_approvals: project.required_approvals,
    }
}

fn project_event<M: prost::Name>(
    event_type: &str,
    project: &Project,
    payload: &M,
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let event = NewEvent::new(event_type, project.id, payload)?
        .tenant(project.tenant_id)
        .version(project.version);
    Ok(cause.stamp(event))
}

pub fn project_created(project: &Project, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::ProjectCreated {
        project_id: project.id.to_string(),
        name: project.name.clone(),
        created_by: project.created_by.clone(),
        required_approvals: project.required_approvals,
    };
    project_event(PROJECT_CREATED, project, &payload, cause)
}

pub fn project_updated(
    project: &Project,
    fields: &[&str],
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let payload = pb::ProjectUpdated {
        project_id: project.id.to_string(),
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
    };
    project_event(PROJECT_UPDATED, project, &payload, cause)
}

pub fn project_archived(project: &Project, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::ProjectArchived {
        project_id: project.id.to_string(),
    };
    project_event(PROJECT_ARCHIVED, project, &payload, cause)
}

pub fn project_deleted(
    project: &Project,
    purge_at: DateTime<Utc>,
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let payload = pb::ProjectDeleted {
        project_id: project.id.to_string(),
        purge_time: Some(timestamp(purge_at)),
    };
    project_event(PROJECT_DELETED, project, &payload, cause)
}

pub fn project_purged(
    tenant: keel_kernel::TenantId,
    project: crate::domain::ProjectId,
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let payload = pb::ProjectPurged {
        project_id: project.to_string(),
    };
    let event = NewEvent::new(PROJECT_PURGED, project, &payload)?
        .tenant(tenant)
        .version(i64::MAX);
    Ok(cause.stamp(event))
}

pub fn comment_added(
    comment: &Comment,
    project: &Project,
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let payload = pb::CommentAdded {
        comment_id: comment.id.to_string(),
        task_id: comment.task_id.to_string(),
        project_id: project.id.to_string(),
        author_id: comment.author_id.clone(),
    };
    let event = NewEvent::new(COMMENT_ADDED, comment.id, &payload)?
        .tenant(comment.tenant_id)
        .version(1);
    Ok(cause.stamp(event))
}
