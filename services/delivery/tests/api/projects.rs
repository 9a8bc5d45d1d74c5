//! Projects: deletion is refused while work waits for approval, is soft with a retention period
//! (events say so) and purged by a job; archived projects are read-only.

use chrono::Duration;
use keel_delivery::domain::Move;
use keel_kernel::ErrorCode;
use keel_proto::delivery::v1 as pb;
use keel_testkit::{assert_status, payload, violated_fields};

use crate::support::TestApp;

#[tokio::test]
async fn a_project_with_a_task_pending_approval_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let mut task = team.task(&app, &project, "Pending").await;
    for by in [Move::Assign, Move::Start, Move::Submit] {
        task = team
            .make(&app, team.actor_for(by), &task, by)
            .await
            .unwrap();
    }
    let delete = pb::DeleteProjectRequest {
        tenant_id: team.tenant.to_string(),
        project_id: project.id.clone(),
        etag: String::new(),
    };
    let status = assert_status(
        team.lead(&app).delete_project(delete.clone()).await,
        ErrorCode::FailedPrecondition,
    );
    assert!(status.message().contains("PENDING_APPROVAL"));
    team.make(&app, team.approver, &task, Move::Approve)
        .await
        .unwrap();
    team.lead(&app).delete_project(delete).await.unwrap();
}

#[tokio::test]
async fn a_deleted_project_is_gone_at_once_and_purged_after_the_retention_period() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = team.task(&app, &project, "Doomed").await;
    let mut lead = team.lead(&app);
    assert_status(
        lead.delete_project(pb::DeleteProjectRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            etag: "\"999\"".into(),
        })
        .await,
        ErrorCode::Aborted,
    );
    lead.delete_project(pb::DeleteProjectRequest {
        tenant_id: team.tenant.to_string(),
        project_id: project.id.clone(),
        etag: project.etag.clone(),
    })
    .await
    .unwrap();
    assert_status(
        lead.get_project(pb::GetProjectRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
        })
        .await,
        ErrorCode::NotFound,
    );
    assert_status(
        lead.get_task(pb::GetTaskRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            task_id: task.id.clone(),
        })
        .await,
        ErrorCode::NotFound,
    );
    let deleted = app.log.of_type("delivery.project.deleted", 1).await;
    let event: pb::ProjectDeleted = payload(&deleted[0]);
    let purge = event.purge_time.unwrap();
    let retention = purge.seconds - app.clock.shared().now().timestamp();
    assert_eq!(retention, Duration::days(30).num_seconds());

    let pool = app.admin_pool().await;
    let rows = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM delivery.tasks")
            .fetch_one(&pool)
            .await
            .unwrap();
        n
    };
    app.clock.advance(Duration::days(29));
    app.run_jobs().await;
    assert_eq!(rows().await, 1, "kept during the retention period");
    app.clock.advance(Duration::days(2));
    assert_eq!(app.run_jobs().await, 1);
    assert_eq!(rows().await, 0, "purged after it");
    assert_eq!(app.log.of_type("delivery.project.purged", 1).await.len(), 1);
}

#[tokio::test]
async fn an_archived_project_is_read_only_until_unarchived() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = team.task(&app, &project, "Frozen").await;
    let mut lead = team.lead(&app);
    let archive = |archived: bool| pb::UpdateProjectRequest {
        tenant_id: team.tenant.to_string(),
        project_id: project.id.clone(),
        project: Some(pb::Project {
            archived,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["archived".into()],
        }),
    };
    let archived = lead
        .update_project(archive(true))
        .await
        .unwrap()
        .into_inner();
    assert!(archived.archived);
    assert_ne!(archived.etag, project.etag);
    assert_status(
        team.make(&app, team.lead, &task, Move::Assign).await,
        ErrorCode::FailedPrecondition,
    );
    assert_status(
        lead.create_task(pb::CreateTaskRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            task: Some(pb::Task {
                title: "More".into(),
                ..Default::default()
            }),
        })
        .await,
        ErrorCode::FailedPrecondition,
    );
    let listed = lead
        .list_projects(pb::ListProjectsRequest {
            tenant_id: team.tenant.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.projects.is_empty(), "archived projects are hidden");
    lead.update_project(archive(false)).await.unwrap();
    team.make(&app, team.lead, &task, Move::Assign)
        .await
        .unwrap();
}

#[tokio::test]
async fn invalid_projects_name_every_field_at_fault() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let status = assert_status(
        team.lead(&app)
            .create_project(pb::CreateProjectRequest {
                tenant_id: team.tenant.to_string(),
                project: Some(pb::Project {
                    name: " ".into(),
                    required_approvals: 11,
                    approval_sla: Some(prost_types::Duration {
                        seconds: 5,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
            })
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "project.name",
            "project.required_approvals",
            "project.approval_sla"
        ]
    );
}
