//! Proto -> domain (all field violations at once) and domain -> proto.

use keel_kernel::grpc::{from_timestamp, timestamp};
use keel_kernel::{Error, UserId, Violations};
use keel_proto::delivery::v1 as pb;

use crate::domain::project::{parse_approval_sla, parse_required_approvals};
use crate::domain::task::{MAX_DESCRIPTION_CHARS, parse_text, parse_title};
use crate::domain::{Approval, Comment, Project, ProjectName, Task, etag};

impl From<&Project> for pb::Project {
    fn from(project: &Project) -> Self {
        pb::Project {
            id: project.id.to_string(),
            tenant_id: project.tenant_id.to_string(),
            name: project.name.clone(),
            description: project.description.clone(),
            archived: project.archived,
            created_by: project.created_by.clone(),
            create_time: Some(timestamp(project.created_at)),
            update_time: Some(timestamp(project.updated_at)),
            etag: etag(project.version),
            required_approvals: project.required_approvals,
            approval_sla: project.approval_sla.map(|sla| prost_types::Duration {
                seconds: sla.num_seconds(),
                nanos: 0,
            }),
        }
    }
}

impl From<&Task> for pb::Task {
    fn from(task: &Task) -> Self {
        pb::Task {
            id: task.id.to_string(),
            tenant_id: task.tenant_id.to_string(),
            project_id: task.project_id.to_string(),
            title: task.title.clone(),
            description: task.description.clone(),
            state: pb::TaskState::from(task.state) as i32,
            assignee_id: task.assignee.map(|u| u.to_string()).unwrap_or_default(),
            created_by: task.created_by.clone(),
            due_time: task.due_at.map(timestamp),
            create_time: Some(timestamp(task.created_at)),
            update_time: Some(timestamp(task.updated_at)),
            etag: etag(task.version),
            approvals: task.approvals,
        }
    }
}

impl From<&Comment> for pb::Comment {
    fn from(comment: &Comment) -> Self {
        pb::Comment {
            id: comment.id.to_string(),
            tenant_id: comment.tenant_id.to_string(),
            task_id: comment.task_id.to_string(),
            author_id: comment.author_id.clone(),
            body: comment.body.clone(),
            create_time: Some(timestamp(comment.created_at)),
        }
    }
}

impl From<&Approval> for pb::Approval {
    fn from(approval: &Approval) -> Self {
        pb::Approval {
            id: approval.id.to_string(),
            tenant_id: approval.tenant_id.to_string(),
            task_id: approval.task_id.to_string(),
            decision: pb::ApprovalDecision::from(approval.decision) as i32,
            reviewer_id: approval.reviewer.to_string(),
            comment: approval.comment.clone(),
            create_time: Some(timestamp(approval.created_at)),
        }
    }
}

/// The fields of a new project.
pub struct NewProject {
    pub name: String,
    pub description: String,
    pub required_approvals: i32,
    pub approval_sla: Option<chrono::Duration>,
}

impl TryFrom<Option<pb::Project>> for NewProject {
    type Error = Error;
    fn try_from(project: Option<pb::Project>) -> Result<Self, Error> {
        let project = project.ok_or_else(|| Error::invalid("project", "is required"))?;
        let mut violations = Violations::default();
        let name = violations.check(ProjectName::parse("project.name", &project.name));
        let description = violations.check(parse_text(
            "project.description",
            &project.description,
            MAX_DESCRIPTION_CHARS,
            false,
        ));
        let required = violations.check(parse_required_approvals(
            "project.required_approvals",
            project.required_approvals,
        ));
        let sla = violations.check(parse_approval_sla(
            "project.approval_sla",
            project.approval_sla.as_ref(),
        ));
        violations.finish()?;
        match (name, description, required, sla) {
            (Some(name), Some(description), Some(required_approvals), Some(approval_sla)) => {
                Ok(NewProject {
                    name,
                    description,
                    required_approvals,
                    approval_sla,
                })
            }
            _ => Err(Error::invalid("project", "is invalid")),
        }
    }
}

/// The fields of a new task.
pub struct NewTask {
    pub title: String,
    pub description: String,
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
    pub assignee: Option<UserId>,
}

impl TryFrom<Option<pb::Task>> for NewTask {
    type Error = Error;
    fn try_from(task: Option<pb::Task>) -> Result<Self, Error> {
        let task = task.ok_or_else(|| Error::invalid("task", "is required"))?;
        let mut violations = Violations::default();
        let title = violations.check(parse_title("task.title", &task.title));
        let description = violations.check(parse_text(
            "task.description",
            &task.description,
            MAX_DESCRIPTION_CHARS,
            false,
        ));
        let due_at = violations.check(
            task.due_time
                .as_ref()
                .map(|t| from_timestamp("task.due_time", t))
                .transpose(),
        );
        let assignee = violations.check(optional_user("task.assignee_id", &task.assignee_id));
        violations.finish()?;
        match (title, description, due_at, assignee) {
            (Some(title), Some(description), Some(due_at), Some(assignee)) => Ok(NewTask {
                title,
                description,
                due_at,
                assignee,
            }),
            _ => Err(Error::invalid("task", "is invalid")),
        }
    }
}

/// An optional user id (empty: none).
pub fn optional_user(field: &str, value: &str) -> Result<Option<UserId>, Error> {
    if value.is_empty() {
        Ok(None)
    } else {
        UserId::parse_field(field, value).map(Some)
    }
}

/// The paths of a required update mask, each one of `allowed`.
pub fn mask_paths(
    mask: Option<&prost_types::FieldMask>,
    allowed: &[&'static str],
) -> Result<Vec<&'static str>, Error> {
    let mask = mask.ok_or_else(|| Error::invalid("update_mask", "is required"))?;
    if mask.paths.is_empty() {
        return Err(Error::invalid(
            "update_mask",
            "must name at least one field",
        ));
    }
    let mut paths = Vec::new();
    for path in &mask.paths {
        match allowed.iter().find(|a| **a == path.as_str()) {
            Some(known) => {
                if !paths.contains(known) {
                    paths.push(*known);
                }
            }
            None => {
                return Err(Error::invalid(
                    "update_mask",
                    format!(
                        "`{path}` cannot be updated; allowed: {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(paths)
}
