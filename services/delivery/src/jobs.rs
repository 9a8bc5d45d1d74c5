//! Delivery's durable jobs (the kernel's worker runs each once across replicas, in the
//! transaction that marks it done, retried on failure):
//! - `delivery.task_overdue`: at a task's due time, `delivery.task.overdue` unless the task is
//!   COMPLETED, deleted, or its due time moved (once per due time);
//! - `delivery.task_escalation`: the project's approval SLA after a submission,
//!   `delivery.task.escalated` if that submission still waits for a decision;
//! - `delivery.project_purge`: at the end of a deleted project's retention, erase it.
//!
//! Each is scheduled in the transaction of the change that needs it; its key names what it is
//! for (`<task>:<due time>`, `<task>:<submission>`, `<project>`), so scheduling twice is harmless.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use keel_kernel::clock::SharedClock;
use keel_kernel::db::TenantTx;
use keel_kernel::jobs::{self, Job, JobHandler, JobTx, NewJob};
use keel_kernel::outbox::Outbox;
use keel_kernel::{Error, TenantId};
use serde::{Deserialize, Serialize};

use crate::domain::{ProjectId, Task, TaskId, TaskState};
use crate::events::{self, Cause};
use crate::repo;

pub const OVERDUE: &str = "delivery.task_overdue";
pub const ESCALATION: &str = "delivery.task_escalation";
pub const PURGE: &str = "delivery.project_purge";

#[derive(Debug, Serialize, Deserialize)]
struct Overdue {
    task_id: TaskId,
    due_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Escalation {
    task_id: TaskId,
    submission: i32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Purge {
    project_id: ProjectId,
}

/// Schedule the overdue check for the task's due time, if it has one and is not done.
pub async fn schedule_overdue(tx: &mut TenantTx, task: &Task) -> Result<(), Error> {
    let Some(due_at) = task.due_at else {
        return Ok(());
    };
    if task.state == TaskState::Completed {
        return Ok(());
    }
    let job = NewJob::new(
        OVERDUE,
        format!("{}:{}", task.id, due_at.timestamp_micros()),
        due_at,
    )
    .tenant(task.tenant_id)
    .payload(&Overdue {
        task_id: task.id,
        due_at,
    })?;
    jobs::schedule(tx, job).await?;
    Ok(())
}

/// Schedule the escalation of the task's current submission after `sla`.
pub async fn schedule_escalation(
    tx: &mut TenantTx,
    task: &Task,
    sla: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let job = NewJob::new(
        ESCALATION,
        format!("{}:{}", task.id, task.submissions),
        now + sla,
    )
    .tenant(task.tenant_id)
    .payload(&Escalation {
        task_id: task.id,
        submission: task.submissions,
    })?;
    jobs::schedule(tx, job).await?;
    Ok(())
}

pub async fn schedule_purge(
    tx: &mut TenantTx,
    tenant: TenantId,
    project: ProjectId,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let job = NewJob::new(PURGE, project.to_string(), at)
        .tenant(tenant)
        .payload(&Purge {
            project_id: project,
        })?;
    jobs::schedule(tx, job).await?;
    Ok(())
}

/// What the job handlers share.
#[derive(Clone)]
pub struct Jobs {
    outbox: Outbox,
    clock: SharedClock,
}

impl Jobs {
    pub fn new(outbox: Outbox, clock: SharedClock) -> Self {
        Jobs { outbox, clock }
    }

    async fn overdue(&self, tx: &mut TenantTx, job: &Job) -> Result<(), Error> {
        let overdue: Overdue = job.payload()?;
        let Some(mut task) = repo::tasks::lock_any(tx, overdue.task_id).await? else {
            return Ok(());
        };
        if task.state == TaskState::Completed
            || task.due_at != Some(overdue.due_at)
            || task.overdue_raised_for == Some(overdue.due_at)
        {
            return Ok(());
        }
        let now = self.clock.now();
        task.overdue_raised_for = Some(overdue.due_at);
        task.version += 1;
        repo::tasks::save(tx, &task).await?;
        let cause = Cause::system(OVERDUE, &job.key);
        let event = events::task_event(events::TASK_OVERDUE, &task, &events::task_overdue(&task))?;
        events::task_changed(tx, &self.outbox, event, &task, &cause, now).await?;
        Ok(())
    }

    async fn escalation(&self, tx: &mut TenantTx, job: &Job) -> Result<(), Error> {
        let escalation: Escalation = job.payload()?;
        let Some(mut task) = repo::tasks::lock_any(tx, escalation.task_id).await? else {
            return Ok(());
        };
        if task.state != TaskState::PendingApproval || task.submissions != escalation.submission {
            return Ok(());
        }
        let project = match repo::projects::get(tx, task.project_id).await {
            Ok(project) => project,
            Err(err) if err.code() == keel_kernel::ErrorCode::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        let now = self.clock.now();
        task.version += 1;
        repo::tasks::save(tx, &task).await?;
        let cause = Cause::system(ESCALATION, &job.key);
        let payload = events::task_escalated(&task, &project);
        let event = events::task_event(events::TASK_ESCALATED, &task, &payload)?;
        events::task_changed(tx, &self.outbox, event, &task, &cause, now).await?;
        Ok(())
    }

    async fn purge(&self, tx: &mut TenantTx, job: &Job) -> Result<(), Error> {
        let purge: Purge = job.payload()?;
        if repo::projects::purge(tx, purge.project_id).await? {
            let cause = Cause::system(PURGE, &job.key);
            let event = events::project_purged(tx.tenant(), purge.project_id, &cause)?;
            self.outbox.enqueue(tx, event).await?;
        }
        Ok(())
    }
}

/// One handler per kind, all on [`Jobs`].
pub struct Handler {
    pub jobs: Jobs,
    pub kind: &'static str,
}

impl Handler {
    async fn run_job(&self, tx: &mut JobTx, job: &Job) -> Result<(), Error> {
        let tx = tx.tenant()?;
        match self.kind {
            OVERDUE => self.jobs.overdue(tx, job).await,
            ESCALATION => self.jobs.escalation(tx, job).await,
            PURGE => self.jobs.purge(tx, job).await,
            other => Err(Error::internal(anyhow::anyhow!("unknown job kind {other}"))),
        }
    }
}

impl JobHandler for Handler {
    fn run<'a>(&'a self, tx: &'a mut JobTx, job: &'a Job) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.run_job(tx, job))
    }
}
