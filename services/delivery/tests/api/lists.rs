//! Task lists: filters, most recently updated first, cursor paging, and full-text search that
//! finds Arabic, Chinese and Korean titles.

use keel_delivery::domain::{Move, TaskState};
use keel_proto::delivery::v1 as pb;

use crate::support::{Team, TestApp, state};

async fn list(
    app: &TestApp,
    team: &Team,
    project: &pb::Project,
    request: pb::ListTasksRequest,
) -> pb::ListTasksResponse {
    team.lead(app)
        .list_tasks(pb::ListTasksRequest {
            tenant_id: team.tenant.to_string(),
            project_id: project.id.clone(),
            ..request
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn tasks_are_listed_most_recently_updated_first_page_by_page() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(team.task(&app, &project, &format!("Task {n}")).await.id);
        app.clock.advance(chrono::Duration::seconds(1));
    }
    // Touching the first makes it the most recent.
    let first = team
        .get(
            &app,
            &pb::Task {
                id: ids[0].clone(),
                project_id: project.id.clone(),
                ..Default::default()
            },
        )
        .await;
    team.make(&app, team.lead, &first, Move::Assign)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            &app,
            &team,
            &project,
            pb::ListTasksRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await;
        seen.extend(page.tasks.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected = vec![
        ids[0].clone(),
        ids[4].clone(),
        ids[3].clone(),
        ids[2].clone(),
        ids[1].clone(),
    ];
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn tasks_are_filtered_by_state_and_assignee() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let draft = team.task(&app, &project, "Draft").await;
    let assigned = team.task(&app, &project, "Assigned").await;
    team.make(&app, team.lead, &assigned, Move::Assign)
        .await
        .unwrap();
    let by_state = list(
        &app,
        &team,
        &project,
        pb::ListTasksRequest {
            state: state(TaskState::Draft),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        by_state.tasks.iter().map(|t| &t.id).collect::<Vec<_>>(),
        [&draft.id]
    );
    let by_assignee = list(
        &app,
        &team,
        &project,
        pb::ListTasksRequest {
            assignee_id: team.worker.to_string(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        by_assignee.tasks.iter().map(|t| &t.id).collect::<Vec<_>>(),
        [&assigned.id]
    );
}

#[tokio::test]
async fn full_text_search_finds_arabic_chinese_and_korean_titles() {
    let app = TestApp::spawn().await;
    let team = app.team().await;
    let project = team.project(&app, 1).await;
    let arabic = team.task(&app, &project, "إعداد تقرير الربع الثالث").await;
    let chinese = team.task(&app, &project, "准备季度财务报告").await;
    let korean = team.task(&app, &project, "분기 보고서를 작성하기").await;
    let english = team
        .task(&app, &project, "Prepare the quarterly report")
        .await;
    let cases = [
        ("تقرير", &arabic.id),
        ("财务报告", &chinese.id),
        ("报告", &chinese.id),
        ("보고서", &korean.id),
        ("분기", &korean.id),
        ("quarterly REPORT", &english.id),
    ];
    for (query, expected) in cases {
        let found = list(
            &app,
            &team,
            &project,
            pb::ListTasksRequest {
                query: query.into(),
                ..Default::default()
            },
        )
        .await;
        let ids: Vec<_> = found.tasks.iter().map(|t| &t.id).collect();
        assert_eq!(ids, [expected], "{query}");
    }
    let none = list(
        &app,
        &team,
        &project,
        pb::ListTasksRequest {
            query: "会议".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(none.tasks.is_empty());
}
