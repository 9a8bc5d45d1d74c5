//! Tenant isolation: another tenant's token is refused, another tenant's ids are not found, and
//! row-level security hides other tenants' rows from the service's own database role.

use keel_kernel::auth::roles;
use keel_kernel::{ErrorCode, db};
use keel_proto::delivery::v1 as pb;
use keel_testkit::assert_status;

use crate::support::TestApp;

#[tokio::test]
async fn another_tenants_token_is_refused_and_its_ids_are_not_found() {
    let app = TestApp::spawn().await;
    let ours = app.team().await;
    let theirs = app.team().await;
    let project = ours.project(&app, 1).await;
    let task = ours.task(&app, &project, "Ours").await;
    // Their token, our tenant in the path: AUTHZ.
    assert_status(
        theirs
            .lead(&app)
            .get_task(pb::GetTaskRequest {
                tenant_id: ours.tenant.to_string(),
                project_id: project.id.clone(),
                task_id: task.id.clone(),
            })
            .await,
        ErrorCode::Authz,
    );
    // Their token and tenant, our ids: NOT_FOUND, for reads and moves alike.
    assert_status(
        theirs
            .lead(&app)
            .get_task(pb::GetTaskRequest {
                tenant_id: theirs.tenant.to_string(),
                project_id: project.id.clone(),
                task_id: task.id.clone(),
            })
            .await,
        ErrorCode::NotFound,
    );
    assert_status(
        app.as_user(theirs.tenant, theirs.lead, roles::ADMIN)
            .assign_task(pb::AssignTaskRequest {
                tenant_id: theirs.tenant.to_string(),
                project_id: project.id.clone(),
                task_id: task.id.clone(),
                assignee_id: theirs.worker.to_string(),
                etag: String::new(),
            })
            .await,
        ErrorCode::NotFound,
    );
    let listed = theirs
        .lead(&app)
        .list_projects(pb::ListProjectsRequest {
            tenant_id: theirs.tenant.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.projects.is_empty());
}

#[tokio::test]
async fn row_level_security_hides_other_tenants_rows_in_every_delivery_table() {
    let app = TestApp::spawn().await;
    let ours = app.team().await;
    let theirs = app.team().await;
    let project = ours.project(&app, 1).await;
    ours.task(&app, &project, "Ours").await;
    let pool = app.service_pool().await;
    let violations = db::check_tenant_tables(&pool, &app.db_config.schema)
        .await
        .expect("check");
    assert!(violations.is_empty(), "{violations:?}");
    for table in ["projects", "tasks", "members", "task_changes"] {
        let mut tx = db::tenant_tx(&pool, theirs.tenant).await.unwrap();
        let (theirs_see,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let rows_of_theirs: i64 = if table == "members" { 5 } else { 0 };
        assert_eq!(theirs_see, rows_of_theirs, "{table}");
        tx.commit().await.unwrap();
    }
}
