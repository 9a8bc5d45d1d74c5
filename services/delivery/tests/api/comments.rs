//! Comments, submission notes, edits of finished work, deleting tasks, and retried creates.

use keel_delivery::domain::{Move, TaskState};
use keel_kernel::ErrorCode;
use keel_proto::delivery::v1 as pb;
use keel_testkit::{assert_status, violated_fields};

use crate::support::{TestApp, state};

#[tokio::test]
async fn comments_are_listed_oldest_first_and_a_submission_note_becomes_one() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let mut task = team.task(&app, &project, "Discussed").await;
    let mut lead = team.lead(&app);
    lead.create_comment(pb::CreateCommentRequest {
        tenant_id: team.tenant.to_string(),
        project_id: project.id.clone(),
        task_id: task.id.clone(),
        comment: Some(pb::Comment {
            body: "First thoughts".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    for by in [Move::Assign, Move::Start] {
        task = team
            .make(&app, team.actor_for(by), &task, by)
            .await
            .unwrap();
    }
    team.worker(&app)
        .submit_task(pb::SubmitTaskRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            task_id: task.id.clone(),
            note: "Done, see the PR".into(),
            etag: String::new(),
        })
        .await
        .unwrap();
    let comments = lead
        .list_comments(pb::ListCommentsRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            task_id: task.id.clone(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(comments.comments[0].body, "First thoughts");
    let rest = lead
        .list_comments(pb::ListCommentsRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            task_id: task.id.clone(),
            page_size: 10,
            page_token: comments.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.comments.len(), 1);
    assert_eq!(rest.comments[0].body, "Done, see the PR");
    assert_eq!(rest.comments[0].author_id, team.worker.to_string());
    assert_eq!(app.log.of_type("delivery.comment.added", 2).await.len(), 2);
    let status = assert_status(
        lead.create_comment(pb::CreateCommentRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            task_id: task.id.clone(),
            comment: Some(pb::Comment::default()),
        })
        .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), ["comment.body"]);
}

#[tokio::test]
async fn a_completed_task_cannot_be_edited_and_a_pending_one_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let mut task = team.task(&app, &project, "Lifecycle").await;
    for by in [Move::Assign, Move::Start, Move::Submit] {
        task = team
            .make(&app, team.actor_for(by), &task, by)
            .await
            .unwrap();
    }
    let delete = pb::DeleteTaskRequest {
        tenant_id: team.tenant.to_string(),
        project_id: project.id.clone(),
        task_id: task.id.clone(),
        etag: String::new(),
    };
    assert_status(
        team.lead(&app).delete_task(delete.clone()).await,
        ErrorCode::FailedPrecondition,
    );
    for by in [Move::Approve, Move::Complete] {
        task = team
            .make(&app, team.actor_for(by), &task, by)
            .await
            .unwrap();
    }
    assert_eq!(task.state, state(TaskState::Completed));
    assert_status(
        team.lead(&app)
            .update_task(pb::UpdateTaskRequest {
                tenant_id: team.tenant.to_string(),
                project_id: project.id.clone(),
                task_id: task.id.clone(),
                task: Some(pb::Task {
                    title: "Rewritten history".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["title".into()],
                }),
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    team.lead(&app).delete_task(delete).await.unwrap();
    assert_status(
        team.lead(&app)
            .get_task(pb::GetTaskRequest {
                tenant_id: team.tenant.to_string(),
                project_id: project.id.clone(),
                task_id: task.id.clone(),
            })
            .await,
        ErrorCode::NotFound,
    );
    assert_eq!(app.log.of_type("delivery.task.deleted", 1).await.len(), 1);
}

#[tokio::test]
async fn an_archived_project_refuses_changes_other_than_unarchiving() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let mut lead = team.lead(&app);
    let update = |project: pb::Project, paths: &[&str]| pb::UpdateProjectRequest {
        tenant_id: team.tenant.to_string(),
        project_id: project.id.clone(),
        project: Some(project),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    };
    lead.update_project(update(
        pb::Project {
            archived: true,
            ..project.clone()
        },
        &["archived"],
    ))
    .await
    .unwrap();
    assert_status(
        lead.update_project(update(
            pb::Project {
                name: "Renamed".into(),
                etag: String::new(),
                ..project.clone()
            },
            &["name"],
        ))
        .await,
        ErrorCode::FailedPrecondition,
    );
    // A stale etag is refused before anything else.
    assert_status(
        lead.update_project(update(
            pb::Project {
                archived: false,
                ..project.clone()
            },
            &["archived"],
        ))
        .await,
        ErrorCode::Aborted,
    );
}

#[tokio::test]
async fn a_create_task_retried_with_the_same_idempotency_key_creates_one_task() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let create = || {
        let mut request = tonic::Request::new(pb::CreateTaskRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            task: Some(pb::Task {
                title: "Once".into(),
                ..Default::default()
            }),
        });
        request
            .metadata_mut()
            .insert("idempotency-key", "create-once-1".parse().unwrap());
        request
    };
    let attempts = (0..5).map(|_| {
        let mut lead = team.lead(&app);
        let request = create();
        async move { lead.create_task(request).await.unwrap().into_inner() }
    });
    let created = futures::future::join_all(attempts).await;
    assert!(created.iter().all(|t| t.id == created[0].id));
    let listed = team
        .lead(&app)
        .list_tasks(pb::ListTasksRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tasks.len(), 1);
}
