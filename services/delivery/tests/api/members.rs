//! The members projection: assignees must be members (from tenancy's events, no call), and a
//! removed member's open tasks go back to DRAFT, unassigned, with an event.

use keel_delivery::domain::{Move, TaskState};
use keel_kernel::{ErrorCode, UserId};
use keel_proto::delivery::v1 as pb;
use keel_testkit::{assert_status, eventually, payload};

use crate::support::{TestApp, state};

#[tokio::test]
async fn a_task_cannot_be_assigned_to_someone_who_is_not_a_member() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = team.task(&app, &project, "Write the brief").await;
    let stranger = UserId::new();
    let status = assert_status(
        team.lead(&app)
            .assign_task(pb::AssignTaskRequest {
                tenant_id: team.tenant.to_string(),
                project_id: project.id.clone(),
                task_id: task.id.clone(),
                assignee_id: stranger.to_string(),
                etag: String::new(),
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    assert!(
        status.message().contains("not a member"),
        "{}",
        status.message()
    );
    assert_eq!(team.get(&app, &task).await.state, state(TaskState::Draft));
    // A member of another tenant is no member of this one.
    let other = app.team().await;
    assert_status(
        team.lead(&app)
            .create_task(pb::CreateTaskRequest {
                tenant_id: team.tenant.to_string(),
                project_id: project.id.clone(),
                task: Some(pb::Task {
                    title: "Theirs".into(),
                    assignee_id: other.worker.to_string(),
                    ..Default::default()
                }),
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
}

#[tokio::test]
async fn a_removed_members_open_tasks_go_back_to_draft_unassigned_with_an_event() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let assigned = team.task(&app, &project, "Assigned").await;
    let assigned = team
        .make(&app, team.lead, &assigned, Move::Assign)
        .await
        .unwrap();
    let started = team.task(&app, &project, "Started").await;
    let started = team
        .make(&app, team.lead, &started, Move::Assign)
        .await
        .unwrap();
    let started = team
        .make(&app, team.worker, &started, Move::Start)
        .await
        .unwrap();
    let submitted = team
        .make(
            &app,
            team.lead,
            &team.task(&app, &project, "Submitted").await,
            Move::Assign,
        )
        .await
        .unwrap();
    let submitted = team
        .make(&app, team.worker, &submitted, Move::Start)
        .await
        .unwrap();
    let submitted = team
        .make(&app, team.worker, &submitted, Move::Submit)
        .await
        .unwrap();

    app.leave(team.tenant, team.worker).await;

    for task in [&assigned, &started] {
        let after = eventually(|| async {
            let after = team.get(&app, task).await;
            (after.state == state(TaskState::Draft)).then_some(after)
        })
        .await;
        assert!(after.assignee_id.is_empty());
    }
    // Submitted work waits for its decision with its author.
    let waiting = team.get(&app, &submitted).await;
    assert_eq!(waiting.state, state(TaskState::PendingApproval));
    assert_eq!(waiting.assignee_id, team.worker.to_string());

    let events = app.log.of_type("delivery.task.unassigned", 2).await;
    assert_eq!(events.len(), 2);
    let unassigned: pb::TaskUnassigned = payload(&events[0]);
    assert_eq!(unassigned.previous_assignee_id, team.worker.to_string());
    assert_eq!(unassigned.reason, "member_removed");
    // And the former member can no longer be given work.
    assert_status(
        team.make(&app, team.lead, &assigned, Move::Assign).await,
        ErrorCode::FailedPrecondition,
    );
}

#[tokio::test]
async fn a_member_event_older_than_the_last_one_applied_changes_nothing() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    // A removal at version 100, then a late "added" at version 50: still removed.
    app.publish_member(team.tenant, team.worker, false, 100)
        .await;
    app.wait_member(team.tenant, team.worker, false).await;
    app.publish_member(team.tenant, team.worker, true, 50).await;
    // A newer event after it is applied, so the stale one has been handled by then.
    let marker = UserId::new();
    app.publish_member(team.tenant, marker, true, 101).await;
    app.wait_member(team.tenant, marker, true).await;
    app.wait_member(team.tenant, team.worker, false).await;
}

#[tokio::test]
async fn assignments_raced_against_the_assignees_removal_never_leave_work_with_a_non_member() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let mut tasks = Vec::new();
    for n in 0..10 {
        tasks.push(team.task(&app, &project, &format!("Raced {n}")).await);
    }
    let assignments = futures::future::join_all(
        tasks
            .iter()
            .map(|task| team.make(&app, team.lead, task, Move::Assign)),
    );
    let removal = app.leave(team.tenant, team.worker);
    let (results, ()) = tokio::join!(assignments, removal);
    for result in results.into_iter().filter(Result::is_err) {
        assert_status(result, ErrorCode::FailedPrecondition);
    }
    // The removal has been applied: every assignment either came before it (and was undone) or
    // after it (and was refused).
    for task in &tasks {
        let after = team.get(&app, task).await;
        assert!(after.assignee_id.is_empty(), "{after:?}");
        assert_eq!(after.state, state(TaskState::Draft));
    }
}
