//! Due dates and approval SLAs on the kernel's durable jobs, with the test clock.

use chrono::Duration;
use keel_delivery::domain::Move;
use keel_kernel::grpc::timestamp;
use keel_proto::delivery::v1 as pb;
use keel_testkit::payload;

use crate::support::TestApp;

#[tokio::test]
async fn a_task_past_its_due_time_raises_overdue_once() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let due = app.clock.shared().now() + Duration::days(2);
    let task = team
        .lead(&app)
        .create_task(pb::CreateTaskRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            task: Some(pb::Task {
                title: "Quarterly report".into(),
                due_time: Some(timestamp(due)),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    app.clock.advance(Duration::days(1));
    assert_eq!(app.run_jobs().await, 0, "not due yet");
    app.clock.advance(Duration::days(1) + Duration::minutes(1));
    assert_eq!(app.run_jobs().await, 1);
    app.clock.advance(Duration::days(3));
    assert_eq!(app.run_jobs().await, 0, "once");
    let overdue = app.log.of_type("delivery.task.overdue", 1).await;
    assert_eq!(overdue.len(), 1);
    let event: pb::TaskOverdue = payload(&overdue[0]);
    assert_eq!(event.task_id, task.id);
}

#[tokio::test]
async fn a_completed_task_is_never_overdue() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let due = app.clock.shared().now() + Duration::days(2);
    let mut task = team
        .lead(&app)
        .create_task(pb::CreateTaskRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            task: Some(pb::Task {
                title: "Done early".into(),
                due_time: Some(timestamp(due)),
                assignee_id: team.worker.to_string(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    for by in [Move::Start, Move::Submit, Move::Approve, Move::Complete] {
        task = team
            .make(&app, team.actor_for(by), &task, by)
            .await
            .unwrap();
    }
    app.clock.advance(Duration::days(3));
    assert_eq!(
        app.run_jobs().await,
        1,
        "the job runs and finds nothing to do"
    );
    let (overdue,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM delivery.outbox WHERE event_type = 'delivery.task.overdue'",
    )
    .fetch_one(&app.admin_pool().await)
    .await
    .unwrap();
    assert_eq!(overdue, 0);
}

#[tokio::test]
async fn a_submission_waiting_longer_than_the_approval_sla_is_escalated_once() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team
        .lead(&app)
        .create_project(pb::CreateProjectRequest {
            tenant_id: team.tenant.to_string(),
            project: Some(pb::Project {
                name: "With an SLA".into(),
                approval_sla: Some(prost_types::Duration {
                    seconds: 8 * 3600,
                    nanos: 0,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let mut task = team.task(&app, &project, "Review me").await;
    for by in [Move::Assign, Move::Start, Move::Submit] {
        task = team
            .make(&app, team.actor_for(by), &task, by)
            .await
            .unwrap();
    }
    app.clock.advance(Duration::hours(7));
    assert_eq!(app.run_jobs().await, 0);
    app.clock.advance(Duration::hours(2));
    assert_eq!(app.run_jobs().await, 1);
    let escalated = app.log.of_type("delivery.task.escalated", 1).await;
    assert_eq!(escalated.len(), 1);
    let event: pb::TaskEscalated = payload(&escalated[0]);
    assert_eq!(event.task_id, task.id);
    assert_eq!(event.approval_sla.unwrap().seconds, 8 * 3600);

    // A decision in time: no escalation for the next submission.
    for by in [Move::Reject, Move::Start, Move::Submit, Move::Approve] {
        task = team
            .make(&app, team.actor_for(by), &task, by)
            .await
            .unwrap();
    }
    app.clock.advance(Duration::hours(9));
    assert_eq!(
        app.run_jobs().await,
        1,
        "the job runs and finds the decision made"
    );
    let (escalations,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM delivery.outbox WHERE event_type = 'delivery.task.escalated'",
    )
    .fetch_one(&app.admin_pool().await)
    .await
    .unwrap();
    assert_eq!(escalations, 1);
}
