//! Delivery's domain: validated values and the rules that need no database. The task workflow
//! is one table (`workflow::WORKFLOW`); every move goes through `workflow::plan`.

pub mod ids;
pub mod permissions;
pub mod project;
pub mod task;
pub mod workflow;

pub use ids::{ApprovalId, CommentId, ProjectId, TaskId};
pub use project::{Project, ProjectName};
pub use task::{Approval, Comment, Decision, Task, TaskState};
pub use workflow::{Move, Plan, Who};

/// An etag (AIP-154) as the API renders a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// ABORTED unless `sent` is empty or the etag of `version`.
pub fn check_etag(sent: &str, version: i64, what: &str) -> Result<(), keel_kernel::Error> {
    if sent.is_empty() || sent == etag(version) {
        Ok(())
    } else {
        Err(keel_kernel::Error::aborted(format!(
            "the {what} changed since etag {sent} was read; its etag is now {}",
            etag(version)
        )))
    }
}
