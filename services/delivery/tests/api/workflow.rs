//! The task workflow, generated from the domain's one table: every arrow moves a task, every
//! move the table lacks is refused naming the state and the allowed moves and leaves the task
//! unchanged; re-sends are no-ops; four eyes; etags; concurrent moves serialized.

use std::collections::{HashMap, VecDeque};

use futures::future::join_all;
use keel_delivery::domain::workflow::{self, WORKFLOW};
use keel_delivery::domain::{Move, TaskState};
use keel_kernel::ErrorCode;
use keel_kernel::auth::roles;
use keel_proto::delivery::v1 as pb;
use keel_testkit::{assert_status, violated_fields};

use crate::support::{Team, TestApp, state};

/// The shortest sequence of moves from DRAFT to every state, found in the table itself.
fn paths() -> HashMap<TaskState, Vec<Move>> {
    let mut paths = HashMap::from([(TaskState::Draft, Vec::new())]);
    let mut queue = VecDeque::from([TaskState::Draft]);
    while let Some(from) = queue.pop_front() {
        for arrow in WORKFLOW.iter().filter(|a| a.from == from) {
            if !paths.contains_key(&arrow.to) {
                let mut path = paths[&from].clone();
                path.push(arrow.by);
                paths.insert(arrow.to, path);
                queue.push_back(arrow.to);
            }
        }
    }
    paths
}

/// A new task driven along the table to `target`.
async fn task_in(app: &TestApp, team: &Team, project: &pb::Project, target: TaskState) -> pb::Task {
    let path = paths();
    let mut task = team
        .task(app, project, &format!("to {}", target.api_name()))
        .await;
    for by in &path[&target] {
        task = team
            .make(app, team.actor_for(*by), &task, *by)
            .await
            .unwrap_or_else(|err| panic!("{by:?} towards {target:?}: {err:?}"));
    }
    assert_eq!(task.state, state(target));
    task
}

#[tokio::test]
async fn every_state_is_reachable_through_the_table() {
    let paths = paths();
    for state in TaskState::ALL {
        assert!(paths.contains_key(&state), "{state:?} is unreachable");
    }
}

#[tokio::test]
async fn every_arrow_of_the_workflow_table_moves_the_task_to_its_target_with_an_event() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    for arrow in WORKFLOW {
        let task = task_in(&app, &team, &project, arrow.from).await;
        // Not whoever made the last move, so a self-arrow (reassigning) is no re-send.
        let actor = match arrow.by {
            Move::Assign | Move::Complete => team.other_lead,
            by => team.actor_for(by),
        };
        let moved = team
            .make(&app, actor, &task, arrow.by)
            .await
            .unwrap_or_else(|err| panic!("{arrow:?}: {err:?}"));
        assert_eq!(moved.state, state(arrow.to), "{arrow:?}");
        assert_ne!(moved.etag, task.etag, "{arrow:?} changes the etag");
    }
    // Every arrow published its event.
    for event_type in [
        "delivery.task.assigned",
        "delivery.task.started",
        "delivery.task.submitted",
        "delivery.task.approved",
        "delivery.task.rejected",
        "delivery.task.completed",
    ] {
        assert!(!app.log.of_type(event_type, 1).await.is_empty());
    }
}

#[tokio::test]
async fn every_move_the_table_lacks_is_refused_naming_the_state_and_the_allowed_moves() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let mut refused = 0;
    for from in TaskState::ALL {
        for by in Move::ALL {
            if workflow::find(from, by).is_some() {
                continue;
            }
            let task = task_in(&app, &team, &project, from).await;
            // Someone other than whoever moved it last, so this is not a re-send.
            let actor = match by {
                Move::Approve | Move::Reject => team.other_approver,
                _ => team.other_lead,
            };
            let status = assert_status(
                team.make(&app, actor, &task, by).await,
                ErrorCode::FailedPrecondition,
            );
            assert!(
                status.message().contains(from.api_name()),
                "{from:?} {by:?}: {}",
                status.message()
            );
            for allowed in workflow::allowed_moves(from) {
                assert!(
                    status.message().contains(allowed.name()),
                    "{from:?} {by:?}: {}",
                    status.message()
                );
            }
            let after = team.get(&app, &task).await;
            assert_eq!(
                after.etag, task.etag,
                "{from:?} {by:?} left the task unchanged"
            );
            assert_eq!(after.state, task.state);
            refused += 1;
        }
    }
    assert_eq!(
        refused,
        TaskState::ALL.len() * Move::ALL.len() - WORKFLOW.len()
    );
}

#[tokio::test]
async fn re_sending_the_same_move_by_the_same_caller_is_a_no_op() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = task_in(&app, &team, &project, TaskState::PendingApproval).await;
    let again = team
        .make(&app, team.worker, &task, Move::Submit)
        .await
        .expect("a re-sent submit is not an error");
    assert_eq!(again.state, state(TaskState::PendingApproval));
    assert_eq!(again.etag, task.etag, "nothing changed");
    let approved = team
        .make(&app, team.approver, &task, Move::Approve)
        .await
        .unwrap();
    let again = team
        .make(&app, team.approver, &task, Move::Approve)
        .await
        .unwrap();
    assert_eq!(again.etag, approved.etag);
    assert_eq!(team.approvals(&app, &task).await.len(), 1);
    // The same move by someone else is a refused move, not a re-send.
    assert_status(
        team.make(&app, team.other_approver, &task, Move::Approve)
            .await,
        ErrorCode::FailedPrecondition,
    );
}

#[tokio::test]
async fn only_the_assignee_starts_and_submits() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = task_in(&app, &team, &project, TaskState::Assigned).await;
    assert_status(
        team.make(&app, team.approver, &task, Move::Start).await,
        ErrorCode::Authz,
    );
    let task = team
        .make(&app, team.worker, &task, Move::Start)
        .await
        .unwrap();
    assert_status(
        team.make(&app, team.lead, &task, Move::Submit).await,
        ErrorCode::Authz,
    );
}

#[tokio::test]
async fn four_eyes_the_assignee_can_neither_approve_nor_reject_their_own_work() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = task_in(&app, &team, &project, TaskState::PendingApproval).await;
    for by in [Move::Approve, Move::Reject] {
        let status = assert_status(
            team.make(&app, team.worker, &task, by).await,
            ErrorCode::Authz,
        );
        assert!(
            status.message().contains("four eyes"),
            "{}",
            status.message()
        );
    }
    assert!(team.approvals(&app, &task).await.is_empty());
    // A viewer lacks delivery.task.approve altogether.
    let viewer = app.as_user(team.tenant, team.other_approver, roles::VIEWER);
    let mut viewer = viewer;
    assert_status(
        viewer
            .approve_task(pb::ApproveTaskRequest {
                tenant_id: team.tenant.to_string(),
                project_id: task.project_id.clone(),
                task_id: task.id.clone(),
                ..Default::default()
            })
            .await,
        ErrorCode::Authz,
    );
}

#[tokio::test]
async fn a_rejection_needs_a_reason_and_is_recorded_with_it() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = task_in(&app, &team, &project, TaskState::PendingApproval).await;
    let status = assert_status(
        team.approver(&app)
            .reject_task(pb::RejectTaskRequest {
                tenant_id: team.tenant.to_string(),
                project_id: task.project_id.clone(),
                task_id: task.id.clone(),
                reason: "  ".into(),
                etag: String::new(),
            })
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), ["reason"]);
    team.make(&app, team.approver, &task, Move::Reject)
        .await
        .unwrap();
    let history = team.approvals(&app, &task).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].decision, pb::ApprovalDecision::Rejected as i32);
    assert_eq!(history[0].comment, "needs tests");
    assert_eq!(history[0].reviewer_id, team.approver.to_string());
}

#[tokio::test]
async fn a_stale_etag_is_aborted_and_no_etag_applies() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = task_in(&app, &team, &project, TaskState::Assigned).await;
    let mut lead = team.lead(&app);
    let renamed = lead
        .update_task(pb::UpdateTaskRequest {
            tenant_id: team.tenant.to_string(),
            project_id: task.project_id.clone(),
            task_id: task.id.clone(),
            task: Some(pb::Task {
                title: "Renamed".into(),
                etag: task.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["title".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.title, "Renamed");
    // The old etag is stale now: an update and a move with it are refused, nothing changes.
    assert_status(
        lead.update_task(pb::UpdateTaskRequest {
            tenant_id: team.tenant.to_string(),
            project_id: task.project_id.clone(),
            task_id: task.id.clone(),
            task: Some(pb::Task {
                title: "Lost update".into(),
                etag: task.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["title".into()],
            }),
        })
        .await,
        ErrorCode::Aborted,
    );
    assert_status(
        team.worker(&app)
            .start_task(pb::StartTaskRequest {
                tenant_id: team.tenant.to_string(),
                project_id: task.project_id.clone(),
                task_id: task.id.clone(),
                etag: task.etag.clone(),
            })
            .await,
        ErrorCode::Aborted,
    );
    assert_eq!(team.get(&app, &task).await.title, "Renamed");
    let started = team
        .worker(&app)
        .start_task(pb::StartTaskRequest {
            tenant_id: team.tenant.to_string(),
            project_id: task.project_id.clone(),
            task_id: task.id.clone(),
            etag: renamed.etag.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.state, state(TaskState::InProgress));
}

#[tokio::test]
async fn twenty_parallel_approvals_of_one_task_make_exactly_one_change() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = task_in(&app, &team, &project, TaskState::PendingApproval).await;
    let mut approvers = Vec::new();
    for _ in 0..20 {
        let approver = keel_kernel::UserId::new();
        app.join(team.tenant, approver).await;
        approvers.push(approver);
    }
    let attempts = approvers.iter().map(|approver| {
        let mut client = app.as_user(team.tenant, *approver, roles::MEMBER);
        let request = pb::ApproveTaskRequest {
            tenant_id: team.tenant.to_string(),
            project_id: task.project_id.clone(),
            task_id: task.id.clone(),
            comment: String::new(),
            etag: String::new(),
        };
        async move { client.approve_task(request).await }
    });
    let results = join_all(attempts).await;
    let won: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(won.len(), 1, "exactly one approval wins");
    for result in results.into_iter().filter(Result::is_err) {
        assert_status(result, ErrorCode::FailedPrecondition);
    }
    let history = team.approvals(&app, &task).await;
    assert_eq!(history.len(), 1, "one decision in the history");
    let after = team.get(&app, &task).await;
    assert_eq!(after.state, state(TaskState::Approved));
    assert_eq!(after.approvals, 1);
}

#[tokio::test]
async fn twenty_parallel_starts_by_the_assignee_make_one_change_and_nineteen_no_ops() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = task_in(&app, &team, &project, TaskState::Assigned).await;
    let attempts = (0..20).map(|_| {
        let app = &app;
        let team = &team;
        let task = &task;
        async move { team.make(app, team.worker, task, Move::Start).await }
    });
    let results = join_all(attempts).await;
    let etags: std::collections::BTreeSet<_> =
        results.into_iter().map(|r| r.unwrap().etag).collect();
    assert_eq!(etags.len(), 1, "every caller sees the one change");
    let (started,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM delivery.task_changes WHERE task_id = $1 AND event_type = 'delivery.task.started'",
    )
    .bind(uuid::Uuid::parse_str(&task.id).unwrap())
    .fetch_one(&app.admin_pool().await)
    .await
    .unwrap();
    assert_eq!(started, 1, "one change recorded");
}

#[tokio::test]
async fn with_two_required_approvals_the_task_waits_for_a_second_distinct_approver() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 2).await;
    assert_eq!(project.required_approvals, 2);
    let task = task_in(&app, &team, &project, TaskState::InProgress).await;
    let task = team
        .make(&app, team.worker, &task, Move::Submit)
        .await
        .unwrap();
    let once = team
        .make(&app, team.approver, &task, Move::Approve)
        .await
        .unwrap();
    assert_eq!(once.state, state(TaskState::PendingApproval));
    assert_eq!(once.approvals, 1);
    // The same approver again counts once.
    let again = team
        .make(&app, team.approver, &task, Move::Approve)
        .await
        .unwrap();
    assert_eq!(again.etag, once.etag);
    let twice = team
        .make(&app, team.other_approver, &task, Move::Approve)
        .await
        .unwrap();
    assert_eq!(twice.state, state(TaskState::Approved));
    let history = team.approvals(&app, &task).await;
    let reviewers: Vec<_> = history.iter().map(|a| a.reviewer_id.clone()).collect();
    assert_eq!(
        reviewers,
        [team.approver.to_string(), team.other_approver.to_string()],
        "decision order"
    );
}

#[tokio::test]
async fn the_approval_history_keeps_every_round_in_decision_order() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = task_in(&app, &team, &project, TaskState::PendingApproval).await;
    team.make(&app, team.approver, &task, Move::Reject)
        .await
        .unwrap();
    team.make(&app, team.worker, &task, Move::Start)
        .await
        .unwrap();
    team.make(&app, team.worker, &task, Move::Submit)
        .await
        .unwrap();
    team.make(&app, team.other_approver, &task, Move::Approve)
        .await
        .unwrap();
    let history = team.approvals(&app, &task).await;
    let decisions: Vec<_> = history.iter().map(|a| a.decision).collect();
    assert_eq!(
        decisions,
        [
            pb::ApprovalDecision::Rejected as i32,
            pb::ApprovalDecision::Approved as i32
        ]
    );
    // Append-only underneath: the table refuses an update even to its owner.
    let pool = app.admin_pool().await;
    let update = sqlx::query("UPDATE delivery.approvals SET comment = 'rewritten'")
        .execute(&pool)
        .await;
    assert!(update.is_err(), "approvals cannot be rewritten");
}

#[tokio::test]
async fn ten_approvals_raced_against_ten_rejections_leave_exactly_one_decision() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let task = task_in(&app, &team, &project, TaskState::PendingApproval).await;
    let mut reviewers = Vec::new();
    for _ in 0..20 {
        let reviewer = keel_kernel::UserId::new();
        app.join(team.tenant, reviewer).await;
        reviewers.push(reviewer);
    }
    let attempts = reviewers.iter().enumerate().map(|(n, reviewer)| {
        let by = if n % 2 == 0 {
            Move::Approve
        } else {
            Move::Reject
        };
        let (app, team, task) = (&app, &team, &task);
        async move { (by, team.make(app, *reviewer, task, by).await) }
    });
    let results = join_all(attempts).await;
    let winners: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one decision wins");
    let (winning_move, _) = winners[0];
    let history = team.approvals(&app, &task).await;
    assert_eq!(history.len(), 1);
    let after = team.get(&app, &task).await;
    let expected = if *winning_move == Move::Approve {
        TaskState::Approved
    } else {
        TaskState::Rejected
    };
    assert_eq!(after.state, state(expected));
    for (_, result) in results.into_iter().filter(|(_, r)| r.is_err()) {
        assert_status(result, ErrorCode::FailedPrecondition);
    }
}
