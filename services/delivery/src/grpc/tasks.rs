//! Task, comment and approval use cases. Every move goes through `workflow::plan` (the one
//! table) under the task's row lock.

use keel_kernel::db::{self, TenantTx};
use keel_kernel::grpc::from_timestamp;
use keel_kernel::grpc::paging::{PageSize, PageToken, Rank, TimeId, split_page};
use keel_kernel::idempotency::{Claim, IdempotencyKey, Scope};
use keel_kernel::{Caller, Error, TenantId, UserId};
use keel_proto::delivery::v1 as pb;

use super::Delivery;
use super::convert::{NewTask, mask_paths, optional_user};
use crate::domain::task::{MAX_COMMENT_CHARS, MAX_DESCRIPTION_CHARS, parse_text, parse_title};
use crate::domain::workflow::{self, Attempt};
use crate::domain::{
    Approval, ApprovalId, Comment, CommentId, Decision, Move, Plan, Project, ProjectId, Task,
    TaskId, TaskState, check_etag, permissions,
};
use crate::events::{self, Cause};
use crate::repo::tasks::Filter;
use crate::{jobs, repo};

const TASK_MASK: &[&str] = &["title", "description", "due_time"];

/// The parsed path of a task.
struct TaskPath {
    tenant: TenantId,
    project: ProjectId,
    task: TaskId,
}

fn task_path(
    caller: &Caller,
    permission: &str,
    tenant: &str,
    project: &str,
    task: &str,
) -> Result<TaskPath, Error> {
    let tenant = TenantId::parse_field("tenant_id", tenant)?;
    let tenant = caller.tenant_with(tenant, permission)?;
    Ok(TaskPath {
        tenant,
        project: ProjectId::parse_field("project_id", project)?,
        task: TaskId::parse_field("task_id", task)?,
    })
}

/// What a move carries besides its name.
#[derive(Debug, Default)]
struct MoveInput {
    etag: String,
    assignee: Option<UserId>,
    /// Submit's note, approve's remark, reject's reason.
    text: String,
}

/// FAILED_PRECONDITION unless `user` is a member of the transaction's tenant (the projection).
async fn require_member(tx: &mut TenantTx, user: UserId, field: &str) -> Result<(), Error> {
    if repo::members::is_member(tx, user).await? {
        Ok(())
    } else {
        Err(Error::failed_precondition(format!(
            "{field} {user} is not a member of the tenant"
        )))
    }
}

impl Delivery {
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn create_task_case(
        &self,
        caller: &Caller,
        request: pb::CreateTaskRequest,
    ) -> Result<pb::Task, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::TASK_CREATE)?;
        let project_id = ProjectId::parse_field("project_id", &request.project_id)?;
        let key = IdempotencyKey::from_request(
            "delivery.CreateTask",
            Scope::Tenant(tenant),
            "",
            &caller.meta,
            &request,
        )?;
        let new = NewTask::try_from(request.task)?;
        if new.assignee.is_some() {
            caller.require(permissions::TASK_ASSIGN)?;
        }
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        if let Some(key) = &key
            && let Claim::Replay(done) = key.claim::<pb::Task>(&mut tx).await?
        {
            return Ok(done);
        }
        let project = repo::projects::get(&mut tx, project_id).await?;
        project.require_writable()?;
        if let Some(assignee) = new.assignee {
            require_member(&mut tx, assignee, "task.assignee_id").await?;
        }
        let now = self.0.clock.now();
        let task = Task {
            id: TaskId::new(),
            tenant_id: tenant,
            project_id,
            title: new.title,
            description: new.description,
            state: if new.assignee.is_some() {
                TaskState::Assigned
            } else {
                TaskState::Draft
            },
            assignee: new.assignee,
            created_by: caller.actor().id,
            due_at: new.due_at,
            version: 1,
            submissions: 0,
            approvals: 0,
            submitted_at: None,
            last_move: None,
            last_actor: None,
            overdue_raised_for: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        repo::tasks::insert(&mut tx, &task).await?;
        let event = events::task_event(events::TASK_CREATED, &task, &events::task_created(&task))?;
        events::task_changed(
            &mut tx,
            &self.0.outbox,
            event,
            &task,
            &Cause::of(caller),
            now,
        )
        .await?;
        jobs::schedule_overdue(&mut tx, &task).await?;
        let answer = pb::Task::from(&task);
        if let Some(key) = &key {
            key.complete(&mut tx, &answer).await?;
        }
        tx.commit().await?;
        Ok(answer)
    }

    pub(super) async fn get_task_case(
        &self,
        caller: &Caller,
        request: pb::GetTaskRequest,
    ) -> Result<pb::Task, Error> {
        let path = task_path(
            caller,
            permissions::TASK_READ,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        let mut tx = db::tenant_tx(&self.0.db, path.tenant).await?;
        let task = repo::tasks::get(&mut tx, path.project, path.task).await?;
        tx.commit().await?;
        Ok(pb::Task::from(&task))
    }

    pub(super) async fn list_tasks_case(
        &self,
        caller: &Caller,
        request: pb::ListTasksRequest,
    ) -> Result<pb::ListTasksResponse, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::TASK_READ)?;
        let project = ProjectId::parse_field("project_id", &request.project_id)?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<TimeId>(&request.page_token)?;
        let filter = Filter {
            state: TaskState::parse_filter("state", request.state)?,
            assignee: optional_user("assignee_id", &request.assignee_id)?,
            query: Some(request.query.trim().to_owned()).filter(|q| !q.is_empty()),
        };
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        repo::projects::get(&mut tx, project).await?;
        let rows = repo::tasks::list(&mut tx, project, &filter, after, size.fetch_limit()).await?;
        tx.commit().await?;
        let (page, next_page_token) = split_page(rows, size, |t: &Task| TimeId {
            at: t.updated_at,
            id: t.id.as_uuid(),
        });
        Ok(pb::ListTasksResponse {
            tasks: page.iter().map(pb::Task::from).collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn update_task_case(
        &self,
        caller: &Caller,
        request: pb::UpdateTaskRequest,
    ) -> Result<pb::Task, Error> {
        let path = task_path(
            caller,
            permissions::TASK_UPDATE,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        let paths = mask_paths(request.update_mask.as_ref(), TASK_MASK)?;
        let input = request
            .task
            .ok_or_else(|| Error::invalid("task", "is required"))?;
        let mut tx = db::tenant_tx(&self.0.db, path.tenant).await?;
        let mut task = repo::tasks::lock(&mut tx, path.project, path.task).await?;
        check_etag(&input.etag, task.version, "task")?;
        repo::projects::get(&mut tx, path.project)
            .await?
            .require_writable()?;
        if task.state == TaskState::Completed {
            return Err(Error::failed_precondition(
                "the task is COMPLETED and can no longer be edited",
            ));
        }
        for field in &paths {
            match *field {
                "title" => task.title = parse_title("task.title", &input.title)?,
                "description" => {
                    task.description = parse_text(
                        "task.description",
                        &input.description,
                        MAX_DESCRIPTION_CHARS,
                        false,
                    )?;
                }
                "due_time" => {
                    task.due_at = input
                        .due_time
                        .as_ref()
                        .map(|t| from_timestamp("task.due_time", t))
                        .transpose()?;
                }
                _ => {}
            }
        }
        let now = self.0.clock.now();
        task.version += 1;
        task.updated_at = now;
        repo::tasks::save(&mut tx, &task).await?;
        let event = events::task_event(
            events::TASK_UPDATED,
            &task,
            &events::task_updated(&task, &paths),
        )?;
        events::task_changed(
            &mut tx,
            &self.0.outbox,
            event,
            &task,
            &Cause::of(caller),
            now,
        )
        .await?;
        if paths.contains(&"due_time") {
            jobs::schedule_overdue(&mut tx, &task).await?;
        }
        tx.commit().await?;
        Ok(pb::Task::from(&task))
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn delete_task_case(
        &self,
        caller: &Caller,
        request: pb::DeleteTaskRequest,
    ) -> Result<(), Error> {
        let path = task_path(
            caller,
            permissions::TASK_DELETE,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        let mut tx = db::tenant_tx(&self.0.db, path.tenant).await?;
        let mut task = repo::tasks::lock(&mut tx, path.project, path.task).await?;
        check_etag(&request.etag, task.version, "task")?;
        repo::projects::get(&mut tx, path.project)
            .await?
            .require_writable()?;
        if task.state == TaskState::PendingApproval {
            return Err(Error::failed_precondition(
                "the task is PENDING_APPROVAL; approve or reject it first",
            ));
        }
        let now = self.0.clock.now();
        task.version += 1;
        task.updated_at = now;
        task.deleted_at = Some(now);
        repo::tasks::save(&mut tx, &task).await?;
        let event = events::task_event(events::TASK_DELETED, &task, &events::task_deleted(&task))?;
        events::task_changed(
            &mut tx,
            &self.0.outbox,
            event,
            &task,
            &Cause::of(caller),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn assign_task_case(
        &self,
        caller: &Caller,
        request: pb::AssignTaskRequest,
    ) -> Result<pb::Task, Error> {
        let path = task_path(
            caller,
            permissions::TASK_ASSIGN,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        if request.assignee_id.is_empty() {
            return Err(Error::invalid("assignee_id", "is required"));
        }
        let assignee = UserId::parse_field("assignee_id", &request.assignee_id)?;
        let input = MoveInput {
            etag: request.etag,
            assignee: Some(assignee),
            text: String::new(),
        };
        self.make_move(caller, path, Move::Assign, input).await
    }

    pub(super) async fn start_task_case(
        &self,
        caller: &Caller,
        request: pb::StartTaskRequest,
    ) -> Result<pb::Task, Error> {
        let path = task_path(
            caller,
            permissions::TASK_UPDATE,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        let input = MoveInput {
            etag: request.etag,
            ..MoveInput::default()
        };
        self.make_move(caller, path, Move::Start, input).await
    }

    pub(super) async fn submit_task_case(
        &self,
        caller: &Caller,
        request: pb::SubmitTaskRequest,
    ) -> Result<pb::Task, Error> {
        let path = task_path(
            caller,
            permissions::TASK_UPDATE,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        let note = parse_text("note", &request.note, MAX_COMMENT_CHARS, false)?;
        let input = MoveInput {
            etag: request.etag,
            assignee: None,
            text: note,
        };
        self.make_move(caller, path, Move::Submit, input).await
    }

    pub(super) async fn approve_task_case(
        &self,
        caller: &Caller,
        request: pb::ApproveTaskRequest,
    ) -> Result<pb::Task, Error> {
        let path = task_path(
            caller,
            permissions::TASK_APPROVE,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        let comment = parse_text("comment", &request.comment, MAX_COMMENT_CHARS, false)?;
        let input = MoveInput {
            etag: request.etag,
            assignee: None,
            text: comment,
        };
        self.make_move(caller, path, Move::Approve, input).await
    }

    pub(super) async fn reject_task_case(
        &self,
        caller: &Caller,
        request: pb::RejectTaskRequest,
    ) -> Result<pb::Task, Error> {
        let path = task_path(
            caller,
            permissions::TASK_APPROVE,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        let reason = parse_text("reason", &request.reason, MAX_COMMENT_CHARS, true)?;
        let input = MoveInput {
            etag: request.etag,
            assignee: None,
            text: reason,
        };
        self.make_move(caller, path, Move::Reject, input).await
    }

    pub(super) async fn complete_task_case(
        &self,
        caller: &Caller,
        request: pb::CompleteTaskRequest,
    ) -> Result<pb::Task, Error> {
        let path = task_path(
            caller,
            permissions::TASK_UPDATE,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        let input = MoveInput {
            etag: request.etag,
            ..MoveInput::default()
        };
        self.make_move(caller, path, Move::Complete, input).await
    }

    /// One move, in one transaction: lock the task, plan the move with the workflow table (a
    /// re-send returns the task unchanged), check the etag, apply, record the approval, the
    /// event and the change, schedule what the new state needs.
    #[tracing::instrument(skip_all, fields(tenant_id = %path.tenant, task_id = %path.task, by = by.name()))]
    async fn make_move(
        &self,
        caller: &Caller,
        path: TaskPath,
        by: Move,
        input: MoveInput,
    ) -> Result<pb::Task, Error> {
        let actor = caller.user()?;
        let mut tx = db::tenant_tx(&self.0.db, path.tenant).await?;
        let mut task = repo::tasks::lock(&mut tx, path.project, path.task).await?;
        let project = repo::projects::get(&mut tx, path.project).await?;
        let already_approved = by == Move::Approve
            && task.state == TaskState::PendingApproval
            && repo::approvals::approved_by(&mut tx, task.id, task.submissions, actor).await?;
        let attempt = Attempt {
            by,
            actor,
            assignee: input.assignee,
            already_approved,
        };
        let arrow = match workflow::plan(&task, &attempt)? {
            Plan::Unchanged => {
                tx.commit().await?;
                return Ok(pb::Task::from(&task));
            }
            Plan::Apply(arrow) => arrow,
        };
        check_etag(&input.etag, task.version, "task")?;
        project.require_writable()?;
        if let Some(assignee) = input.assignee {
            require_member(&mut tx, assignee, "assignee_id").await?;
        }
        let now = self.0.clock.now();
        let before = task.clone();
        task.state = task.state_after(by, arrow.to, project.required_approvals);
        task.version += 1;
        task.updated_at = now;
        task.last_move = Some(by);
        task.last_actor = Some(actor);
        let reviewer = actor.to_string();
        let cause = Cause::of(caller);
        match by {
            Move::Assign => task.assignee = input.assignee,
            Move::Start | Move::Complete => {}
            Move::Submit => {
                task.submissions += 1;
                task.approvals = 0;
                task.submitted_at = Some(now);
            }
            Move::Approve => {
                task.approvals += 1;
                self.record_decision(&mut tx, &task, Decision::Approved, actor, &input.text, now)
                    .await?;
            }
            Move::Reject => {
                self.record_decision(&mut tx, &task, Decision::Rejected, actor, &input.text, now)
                    .await?;
            }
        }
        repo::tasks::save(&mut tx, &task).await?;
        let required = project.required_approvals;
        let event = match by {
            Move::Assign => events::task_event(
                events::TASK_ASSIGNED,
                &task,
                &events::task_assigned(&task, &before),
            )?,
            Move::Start => events::task_event(
                events::TASK_STARTED,
                &task,
                &events::task_started(&task, &before),
            )?,
            Move::Submit => events::task_event(
                events::TASK_SUBMITTED,
                &task,
                &events::task_submitted(&task, &input.text),
            )?,
            // Short of the project's required approvals: recorded, still waiting.
            Move::Approve if task.state == TaskState::PendingApproval => events::task_event(
                events::TASK_APPROVAL_RECORDED,
                &task,
                &events::task_approval_recorded(&task, &reviewer, &input.text, required),
            )?,
            Move::Approve => events::task_event(
                events::TASK_APPROVED,
                &task,
                &events::task_approved(&task, &reviewer, &input.text, required),
            )?,
            Move::Reject => events::task_event(
                events::TASK_REJECTED,
                &task,
                &events::task_rejected(&task, &reviewer, &input.text),
            )?,
            Move::Complete => events::task_event(
                events::TASK_COMPLETED,
                &task,
                &events::task_completed(&task, &reviewer),
            )?,
        };
        events::task_changed(&mut tx, &self.0.outbox, event, &task, &cause, now).await?;
        if by == Move::Submit {
            if !input.text.trim().is_empty() {
                self.add_comment(&mut tx, &project, &task, &reviewer, &input.text, &cause)
                    .await?;
            }
            if let Some(sla) = project.approval_sla {
                jobs::schedule_escalation(&mut tx, &task, sla, now).await?;
            }
        }
        tx.commit().await?;
        Ok(pb::Task::from(&task))
    }

    async fn record_decision(
        &self,
        tx: &mut TenantTx,
        task: &Task,
        decision: Decision,
        reviewer: UserId,
        comment: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        let approval = Approval {
            id: ApprovalId::new(),
            tenant_id: task.tenant_id,
            task_id: task.id,
            position: 0,
            submission: task.submissions,
            decision,
            reviewer,
            comment: comment.to_owned(),
            created_at: now,
        };
        repo::approvals::append(tx, &approval).await?;
        Ok(())
    }

    async fn add_comment(
        &self,
        tx: &mut TenantTx,
        project: &Project,
        task: &Task,
        author: &str,
        body: &str,
        cause: &Cause,
    ) -> Result<Comment, Error> {
        let comment = Comment {
            id: CommentId::new(),
            tenant_id: task.tenant_id,
            task_id: task.id,
            author_id: author.to_owned(),
            body: body.to_owned(),
            created_at: self.0.clock.now(),
        };
        repo::comments::insert(tx, &comment).await?;
        let event = events::comment_added(&comment, project, cause)?;
        self.0.outbox.enqueue(tx, event).await?;
        Ok(comment)
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn create_comment_case(
        &self,
        caller: &Caller,
        request: pb::CreateCommentRequest,
    ) -> Result<pb::Comment, Error> {
        let path = task_path(
            caller,
            permissions::COMMENT_CREATE,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        let body = request
            .comment
            .as_ref()
            .map(|c| c.body.as_str())
            .unwrap_or_default();
        let body = parse_text("comment.body", body, MAX_COMMENT_CHARS, true)?;
        let mut tx = db::tenant_tx(&self.0.db, path.tenant).await?;
        let task = repo::tasks::get(&mut tx, path.project, path.task).await?;
        let project = repo::projects::get(&mut tx, path.project).await?;
        let comment = self
            .add_comment(
                &mut tx,
                &project,
                &task,
                &caller.actor().id,
                &body,
                &Cause::of(caller),
            )
            .await?;
        tx.commit().await?;
        Ok(pb::Comment::from(&comment))
    }

    pub(super) async fn list_comments_case(
        &self,
        caller: &Caller,
        request: pb::ListCommentsRequest,
    ) -> Result<pb::ListCommentsResponse, Error> {
        let path = task_path(
            caller,
            permissions::COMMENT_READ,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<TimeId>(&request.page_token)?;
        let mut tx = db::tenant_tx(&self.0.db, path.tenant).await?;
        repo::tasks::get(&mut tx, path.project, path.task).await?;
        let rows = repo::comments::list(&mut tx, path.task, after, size.fetch_limit()).await?;
        tx.commit().await?;
        let (page, next_page_token) = split_page(rows, size, |c: &Comment| TimeId {
            at: c.created_at,
            id: c.id.as_uuid(),
        });
        Ok(pb::ListCommentsResponse {
            comments: page.iter().map(pb::Comment::from).collect(),
            next_page_token,
        })
    }

    pub(super) async fn list_approvals_case(
        &self,
        caller: &Caller,
        request: pb::ListApprovalsRequest,
    ) -> Result<pb::ListApprovalsResponse, Error> {
        let path = task_path(
            caller,
            permissions::TASK_READ,
            &request.tenant_id,
            &request.project_id,
            &request.task_id,
        )?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<Rank>(&request.page_token)?.map_or(0, |r| r.0);
        let mut tx = db::tenant_tx(&self.0.db, path.tenant).await?;
        repo::tasks::get(&mut tx, path.project, path.task).await?;
        let rows = repo::approvals::list(&mut tx, path.task, after, size.fetch_limit()).await?;
        tx.commit().await?;
        let (page, next_page_token) = split_page(rows, size, |a: &Approval| Rank(a.position));
        Ok(pb::ListApprovalsResponse {
            approvals: page.iter().map(pb::Approval::from).collect(),
            next_page_token,
        })
    }
}
