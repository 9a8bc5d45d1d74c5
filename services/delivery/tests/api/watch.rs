//! WatchTasks: every change of the project's tasks, live; a reconnect after the last event id
//! (field or `last-event-id` metadata) gets exactly the missed changes, across a restart of the
//! service, then live ones; other tenants never see them.

use std::time::Duration;

use keel_delivery::domain::Move;
use keel_kernel::ErrorCode;
use keel_proto::delivery::v1 as pb;
use keel_testkit::assert_status;
use tonic::Streaming;

use crate::support::{Team, TestApp};

/// A guard against a hang, not a latency assertion.
const GUARD: Duration = Duration::from_secs(20);

async fn watch(
    app: &TestApp,
    team: &Team,
    project: &pb::Project,
    after: &str,
) -> Streaming<pb::TaskEvent> {
    team.lead(app)
        .watch_tasks(pb::WatchTasksRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            after_event_id: after.into(),
        })
        .await
        .expect("watch")
        .into_inner()
}

async fn next(stream: &mut Streaming<pb::TaskEvent>) -> pb::TaskEvent {
    tokio::time::timeout(GUARD, stream.message())
        .await
        .expect("a change arrives")
        .expect("stream ok")
        .expect("stream open")
}

#[tokio::test]
async fn a_watcher_that_reconnects_with_its_last_event_id_gets_exactly_the_missed_changes_then_live_ones()
 {
    let mut app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;

    let mut stream = watch(&app, &team, &project, "").await;
    let task = team.task(&app, &project, "Watched").await;
    let task = team
        .make(&app, team.lead, &task, Move::Assign)
        .await
        .unwrap();
    let created = next(&mut stream).await;
    let assigned = next(&mut stream).await;
    assert_eq!(created.event_type, "delivery.task.created");
    assert_eq!(assigned.event_type, "delivery.task.assigned");
    assert_eq!(
        assigned.task.as_ref().unwrap().assignee_id,
        team.worker.to_string()
    );
    assert_eq!(assigned.sequence, created.sequence + 1);
    drop(stream);

    // Missed while disconnected, and the service restarts in between.
    let task = team
        .make(&app, team.worker, &task, Move::Start)
        .await
        .unwrap();
    app.stop_service().await;
    app.start().await;
    let task = team
        .make(&app, team.worker, &task, Move::Submit)
        .await
        .unwrap();

    let mut stream = watch(&app, &team, &project, &assigned.event_id).await;
    let missed = [next(&mut stream).await, next(&mut stream).await];
    let types: Vec<_> = missed.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["delivery.task.started", "delivery.task.submitted"]);
    assert_eq!(missed[0].sequence, assigned.sequence + 1);
    assert_eq!(missed[1].sequence, assigned.sequence + 2);
    // Then live.
    team.make(&app, team.approver, &task, Move::Approve)
        .await
        .unwrap();
    let live = next(&mut stream).await;
    assert_eq!(live.event_type, "delivery.task.approved");
    assert_eq!(live.sequence, assigned.sequence + 3);
    drop(stream);

    // The gateway's way: `last-event-id` metadata from the SSE `Last-Event-ID` header.
    let mut request = tonic::Request::new(pb::WatchTasksRequest {
        tenant_id: team.tenant.to_string(),
        project_id: project.id.clone(),
        after_event_id: String::new(),
    });
    request
        .metadata_mut()
        .insert("last-event-id", missed[0].event_id.parse().unwrap());
    let mut stream = team
        .lead(&app)
        .watch_tasks(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut stream).await.event_id, missed[1].event_id);
    assert_eq!(next(&mut stream).await.event_id, live.event_id);
}

#[tokio::test]
async fn a_watcher_sees_only_its_own_tenants_changes() {
    let app = TestApp::spawn().await;
    let ours = app.team().await;
    let theirs = app.team().await;
    let our_project = ours.project(&app, 1).await;
    let their_project = theirs.project(&app, 1).await;
    let mut their_stream = watch(&app, &theirs, &their_project, "").await;
    let mut our_stream = watch(&app, &ours, &our_project, "").await;
    for n in 0..3 {
        ours.task(&app, &our_project, &format!("Ours {n}")).await;
    }
    for _ in 0..3 {
        next(&mut our_stream).await;
    }
    let theirs_task = theirs.task(&app, &their_project, "Theirs").await;
    let first = next(&mut their_stream).await;
    assert_eq!(
        first.task.unwrap().id,
        theirs_task.id,
        "nothing of ours came first"
    );
    // Their token on our project: refused.
    assert_status(
        theirs
            .lead(&app)
            .watch_tasks(pb::WatchTasksRequest {
                tenant_id: ours.tenant.to_string(),
                project_id: our_project.id.clone(),
                after_event_id: String::new(),
            })
            .await,
        ErrorCode::Authz,
    );
    assert_status(
        theirs
            .lead(&app)
            .watch_tasks(pb::WatchTasksRequest {
                tenant_id: theirs.tenant.to_string(),
                project_id: our_project.id.clone(),
                after_event_id: String::new(),
            })
            .await,
        ErrorCode::NotFound,
    );
}

#[tokio::test]
async fn resuming_after_an_event_id_the_project_never_had_is_not_found() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let status = assert_status(
        team.lead(&app)
            .watch_tasks(pb::WatchTasksRequest {
                tenant_id: team.tenant.to_string(),
                project_id: project.id.clone(),
                after_event_id: uuid::Uuid::now_v7().to_string(),
            })
            .await,
        ErrorCode::NotFound,
    );
    assert!(!status.message().is_empty());
    let status = assert_status(
        team.lead(&app)
            .watch_tasks(pb::WatchTasksRequest {
                tenant_id: team.tenant.to_string(),
                project_id: project.id.clone(),
                after_event_id: "not-an-id".into(),
            })
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(keel_testkit::violated_fields(&status), ["after_event_id"]);
}
