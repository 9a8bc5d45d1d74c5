//! The in-app inbox: per user within a tenant, read state, the live stream.

use futures::StreamExt;
use keel_kernel::ErrorCode;
use keel_proto::notifications::v1 as pb;
use keel_testkit::assert_status;

use crate::support::{TestApp, unique_email};

#[tokio::test]
async fn a_task_assigned_to_someone_lands_in_their_inbox_only_and_can_be_marked_read() {
    let app = TestApp::spawn().await;
    let owner = app.register(&unique_email("owner"), "Owner").await;
    let (tenant, owner_token) = app.create_tenant(&owner, "Acme").await;
    // The owner's own inbox has the news of the tenant's approval, nothing else.
    let own = app.inbox(&owner_token, tenant, 1).await;
    assert_eq!(own.notifications.len(), 1);
    assert_eq!(own.notifications[0].title, "Acme is approved");
    assert_eq!(own.notifications[0].event_type, "tenancy.tenant.approved");
    let worker = app.register(&unique_email("worker"), "Wendy").await;
    app.task_assigned(tenant, "Paint the fence <now>", owner.id, worker.id)
        .await;
    // The worker is no member: nobody reads that inbox with a token of this tenant, but the
    // owner's inbox did not get the worker's notification either.
    let pool = app.service_pool().await;
    keel_testkit::eventually(|| async {
        let mut tx = keel_kernel::db::tenant_tx(&pool, tenant).await.ok()?;
        let (count,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM notifications WHERE user_id = $1")
                .bind(worker.id.as_uuid())
                .fetch_one(&mut *tx)
                .await
                .ok()?;
        (count == 1).then_some(())
    })
    .await;
    let own = app.inbox(&owner_token, tenant, 1).await;
    assert_eq!(own.notifications.len(), 1);
    assert_eq!(own.unread_count, 1);

    // The owner assigns one to themselves: no news; one assigned by someone else is.
    app.task_assigned(tenant, "Water the plants", worker.id, owner.id)
        .await;
    let own = app.inbox(&owner_token, tenant, 2).await;
    let newest = &own.notifications[0];
    assert_eq!(newest.title, "Task assigned to you: Water the plants");
    assert_eq!(newest.category, pb::Category::Work as i32);
    assert!(newest.link.ends_with(&format!(
        "/tasks/{}",
        newest.link.rsplit('/').next().unwrap()
    )));
    assert_eq!(own.unread_count, 2);

    let client = app.client(&owner_token);
    let read = client
        .clone()
        .mark_read(pb::MarkReadRequest {
            tenant_id: tenant.to_string(),
            notification_id: newest.notification_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(read.read_time.is_some());
    let unread = client
        .clone()
        .get_unread_count(pb::GetUnreadCountRequest {
            tenant_id: tenant.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unread.unread_count, 1);
    let marked = client
        .clone()
        .mark_all_read(pb::MarkAllReadRequest {
            tenant_id: tenant.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(marked.marked, 1);
    let unread_only = client
        .clone()
        .list_notifications(pb::ListNotificationsRequest {
            tenant_id: tenant.to_string(),
            unread_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(unread_only.notifications.is_empty());
}

#[tokio::test]
async fn nobody_reads_or_marks_another_users_or_another_tenants_notifications() {
    let app = TestApp::spawn().await;
    let alice = app.register(&unique_email("alice"), "Alice").await;
    let bob = app.register(&unique_email("bob"), "Bob").await;
    let (ours, alice_token) = app.create_tenant(&alice, "Ours").await;
    let (theirs, bob_token) = app.create_tenant(&bob, "Theirs").await;
    let alices = app.inbox(&alice_token, ours, 1).await;
    app.inbox(&bob_token, theirs, 1).await;

    // Bob's token is scoped to his tenant: asking for Alice's tenant is refused.
    let refused = app
        .client(&bob_token)
        .list_notifications(pb::ListNotificationsRequest {
            tenant_id: ours.to_string(),
            ..Default::default()
        })
        .await;
    assert_status(refused, ErrorCode::Authz);
    // Within his own tenant, Alice's notification does not exist for him.
    let refused = app
        .client(&bob_token)
        .mark_read(pb::MarkReadRequest {
            tenant_id: theirs.to_string(),
            notification_id: alices.notifications[0].notification_id.clone(),
        })
        .await;
    assert_status(refused, ErrorCode::NotFound);
    // An unscoped token has no inbox.
    let refused = app
        .client(&alice.access_token)
        .list_notifications(pb::ListNotificationsRequest {
            tenant_id: ours.to_string(),
            ..Default::default()
        })
        .await;
    assert!(refused.is_err());
    let bad = app
        .client(&alice_token)
        .mark_read(pb::MarkReadRequest {
            tenant_id: ours.to_string(),
            notification_id: "not-an-id".into(),
        })
        .await;
    assert_eq!(
        keel_testkit::violated_fields(&bad.expect_err("invalid id")),
        vec!["notification_id".to_owned()]
    );
}

#[tokio::test]
async fn the_watch_stream_sends_new_notifications_and_resumes_after_the_last_one_seen() {
    let app = TestApp::spawn().await;
    let owner = app.register(&unique_email("owner"), "Owner").await;
    let other = app.register(&unique_email("other"), "Other").await;
    let (tenant, token) = app.create_tenant(&owner, "Acme").await;
    app.inbox(&token, tenant, 1).await;
    let mut stream = app
        .client(&token)
        .watch_notifications(pb::WatchNotificationsRequest {
            tenant_id: tenant.to_string(),
            after_event_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    app.task_assigned(tenant, "First", other.id, owner.id).await;
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .expect("a message in time")
        .expect("open")
        .expect("ok");
    let notification = first.notification.expect("notification");
    assert_eq!(notification.title, "Task assigned to you: First");
    assert_eq!(first.event_id, notification.notification_id);
    assert_eq!(first.unread_count, 2);
    drop(stream);

    app.task_assigned(tenant, "Second", other.id, owner.id)
        .await;
    app.inbox(&token, tenant, 3).await;
    let mut resumed = app
        .client(&token)
        .watch_notifications(pb::WatchNotificationsRequest {
            tenant_id: tenant.to_string(),
            after_event_id: first.event_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), resumed.next())
        .await
        .expect("the missed one")
        .expect("open")
        .expect("ok");
    assert_eq!(
        next.notification.unwrap().title,
        "Task assigned to you: Second"
    );
}
