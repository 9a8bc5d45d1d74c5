//! Project use cases.

use keel_kernel::db;
use keel_kernel::grpc::paging::{PageSize, PageToken, TimeId, split_page};
use keel_kernel::{Caller, Error, TenantId};
use keel_proto::delivery::v1 as pb;

use super::Delivery;
use super::convert::{NewProject, mask_paths};
use crate::domain::project::{parse_approval_sla, parse_required_approvals};
use crate::domain::task::{MAX_DESCRIPTION_CHARS, parse_text};
use crate::domain::{Project, ProjectId, ProjectName, check_etag, permissions};
use crate::events::{self, Cause};
use crate::{jobs, repo};

const PROJECT_MASK: &[&str] = &[
    "name",
    "description",
    "archived",
    "required_approvals",
    "approval_sla",
];

impl Delivery {
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn create_project_case(
        &self,
        caller: &Caller,
        request: pb::CreateProjectRequest,
    ) -> Result<pb::Project, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::PROJECT_CREATE)?;
        let new = NewProject::try_from(request.project)?;
        let now = self.0.clock.now();
        let project = Project {
            id: ProjectId::new(),
            tenant_id: tenant,
            name: new.name,
            description: new.description,
            archived: false,
            created_by: caller.actor().id,
            required_approvals: new.required_approvals,
            approval_sla: new.approval_sla,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        repo::projects::insert(&mut tx, &project).await?;
        let event = events::project_created(&project, &Cause::of(caller))?;
        self.0.outbox.enqueue(&mut tx, event).await?;
        tx.commit().await?;
        Ok(pb::Project::from(&project))
    }

    pub(super) async fn get_project_case(
        &self,
        caller: &Caller,
        request: pb::GetProjectRequest,
    ) -> Result<pb::Project, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::PROJECT_READ)?;
        let id = ProjectId::parse_field("project_id", &request.project_id)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let project = repo::projects::get(&mut tx, id).await?;
        tx.commit().await?;
        Ok(pb::Project::from(&project))
    }

    pub(super) async fn list_projects_case(
        &self,
        caller: &Caller,
        request: pb::ListProjectsRequest,
    ) -> Result<pb::ListProjectsResponse, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::PROJECT_READ)?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<TimeId>(&request.page_token)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let rows =
            repo::projects::list(&mut tx, request.show_archived, after, size.fetch_limit()).await?;
        tx.commit().await?;
        let (page, next_page_token) = split_page(rows, size, |p: &Project| TimeId {
            at: p.created_at,
            id: p.id.as_uuid(),
        });
        Ok(pb::ListProjectsResponse {
            projects: page.iter().map(pb::Project::from).collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn update_project_case(
        &self,
        caller: &Caller,
        request: pb::UpdateProjectRequest,
    ) -> Result<pb::Project, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::PROJECT_UPDATE)?;
        let id = ProjectId::parse_field("project_id", &request.project_id)?;
        let paths = mask_paths(request.update_mask.as_ref(), PROJECT_MASK)?;
        let input = request
            .project
            .ok_or_else(|| Error::invalid("project", "is required"))?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let mut project = repo::projects::lock(&mut tx, id).await?;
        check_etag(&input.etag, project.version, "project")?;
        let unarchives = paths.contains(&"archived") && !input.archived;
        if project.archived && !unarchives {
            project.require_writable()?;
        }
        let was_archived = project.archived;
        for path in &paths {
            match *path {
                "name" => project.name = ProjectName::parse("project.name", &input.name)?,
                "description" => {
                    project.description = parse_text(
                        "project.description",
                        &input.description,
                        MAX_DESCRIPTION_CHARS,
                        false,
                    )?;
                }
                "archived" => project.archived = input.archived,
                "required_approvals" => {
                    project.required_approvals = parse_required_approvals(
                        "project.required_approvals",
                        input.required_approvals,
                    )?;
                }
                "approval_sla" => {
                    project.approval_sla =
                        parse_approval_sla("project.approval_sla", input.approval_sla.as_ref())?;
                }
                _ => {}
            }
        }
        project.version += 1;
        project.updated_at = self.0.clock.now();
        repo::projects::update(&mut tx, &project).await?;
        let cause = Cause::of(caller);
        let event = if project.archived && !was_archived {
            events::project_archived(&project, &cause)?
        } else {
            events::project_updated(&project, &paths, &cause)?
        };
        self.0.outbox.enqueue(&mut tx, event).await?;
        tx.commit().await?;
        Ok(pb::Project::from(&project))
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn delete_project_case(
        &self,
        caller: &Caller,
        request: pb::DeleteProjectRequest,
    ) -> Result<(), Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::PROJECT_DELETE)?;
        let id = ProjectId::parse_field("project_id", &request.project_id)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let mut project = repo::projects::lock(&mut tx, id).await?;
        check_etag(&request.etag, project.version, "project")?;
        // Task moves lock their task, then the project row (change sequence); a submission that
        // commits first is seen here, one that comes later finds the project gone.
        if repo::tasks::any_pending_approval(&mut tx, id).await? {
            return Err(Error::failed_precondition(
                "a task of the project is PENDING_APPROVAL; approve or reject it first",
            ));
        }
        let now = self.0.clock.now();
        let purge_at = now + self.0.settings.retention();
        repo::projects::soft_delete(&mut tx, id, now, purge_at).await?;
        jobs::schedule_purge(&mut tx, tenant, id, purge_at).await?;
        project.version += 1;
        let event = events::project_deleted(&project, purge_at, &Cause::of(caller))?;
        self.0.outbox.enqueue(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }
}
