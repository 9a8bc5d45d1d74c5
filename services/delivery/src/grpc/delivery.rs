//! The `DeliveryService` handler: every trait method builds the `Caller` and calls the use case
//! of the same name (in `projects.rs`, `tasks.rs`, `watch.rs`).

use std::pin::Pin;

use futures::Stream;
use keel_kernel::Caller;
use keel_proto::delivery::v1 as pb;
use keel_proto::delivery::v1::delivery_service_server::DeliveryService;
use tonic::{Request, Response, Status};

use super::Shared;

pub struct Delivery(pub Shared);

pub type TaskEvents = Pin<Box<dyn Stream<Item = Result<pb::TaskEvent, Status>> + Send>>;

#[tonic::async_trait]
impl DeliveryService for Delivery {
    type WatchTasksStream = TaskEvents;

    async fn watch_tasks(
        &self,
        request: Request<pb::WatchTasksRequest>,
    ) -> Result<Response<Self::WatchTasksStream>, Status> {
        let caller = Caller::from_request(&request)?;
        let last_event_id = request
            .metadata()
            .get(super::watch::LAST_EVENT_ID)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Response::new(
            self.watch(&caller, request.into_inner(), &last_event_id)
                .await?,
        ))
    }

    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.create_project_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn get_project(
        &self,
        request: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.get_project_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_projects_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn update_project(
        &self,
        request: Request<pb::UpdateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.update_project_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn delete_project(
        &self,
        request: Request<pb::DeleteProjectRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.delete_project_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn create_task(
        &self,
        request: Request<pb::CreateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.create_task_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.get_task_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_tasks_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn update_task(
        &self,
        request: Request<pb::UpdateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.update_task_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn delete_task(
        &self,
        request: Request<pb::DeleteTaskRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.delete_task_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn assign_task(
        &self,
        request: Request<pb::AssignTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.assign_task_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn start_task(
        &self,
        request: Request<pb::StartTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.start_task_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn submit_task(
        &self,
        request: Request<pb::SubmitTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.submit_task_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn approve_task(
        &self,
        request: Request<pb::ApproveTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.approve_task_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn reject_task(
        &self,
        request: Request<pb::RejectTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.reject_task_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn complete_task(
        &self,
        request: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.complete_task_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn create_comment(
        &self,
        request: Request<pb::CreateCommentRequest>,
    ) -> Result<Response<pb::Comment>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.create_comment_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn list_comments(
        &self,
        request: Request<pb::ListCommentsRequest>,
    ) -> Result<Response<pb::ListCommentsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_comments_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn list_approvals(
        &self,
        request: Request<pb::ListApprovalsRequest>,
    ) -> Result<Response<pb::ListApprovalsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_approvals_case(&caller, request.into_inner())
                .await?,
        ))
    }
}
