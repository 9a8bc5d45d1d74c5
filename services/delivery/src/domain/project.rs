//! Projects: containers of tasks with their approval rules.

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId};

use super::ids::ProjectId;

#[derive(Debug, Clone)]
pub struct Project {
    pub id: ProjectId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub created_by: String,
    pub required_approvals: i32,
    pub approval_sla: Option<chrono::Duration>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Project {
    /// FAILED_PRECONDITION when the project is archived (read-only).
    pub fn require_writable(&self) -> Result<(), Error> {
        if self.archived {
            return Err(Error::failed_precondition(
                "the project is archived and read-only; unarchive it first",
            ));
        }
        Ok(())
    }
}

pub struct ProjectName;

impl ProjectName {
    pub fn parse(field: &str, value: &str) -> Result<String, Error> {
        super::task::parse_title(field, value)
    }
}

pub const MAX_REQUIRED_APPROVALS: i32 = 10;

/// `required_approvals`: 0 (unset) is 1.
pub fn parse_required_approvals(field: &str, value: i32) -> Result<i32, Error> {
    match value {
        0 => Ok(1),
        1..=MAX_REQUIRED_APPROVALS => Ok(value),
        _ => Err(Error::invalid(
            field,
            format!("must be between 1 and {MAX_REQUIRED_APPROVALS}"),
        )),
    }
}

/// `approval_sla`: at least a minute, at most a year.
pub fn parse_approval_sla(
    field: &str,
    value: Option<&prost_types::Duration>,
) -> Result<Option<chrono::Duration>, Error> {
    let Some(value) = value else { return Ok(None) };
    if value.seconds == 0 && value.nanos == 0 {
        return Ok(None);
    }
    if value.seconds < 60 || value.seconds > 366 * 24 * 3600 || value.nanos != 0 {
        return Err(Error::invalid(
            field,
            "must be whole seconds, at least one minute and at most a year",
        ));
    }
    Ok(Some(chrono::Duration::seconds(value.seconds)))
}
