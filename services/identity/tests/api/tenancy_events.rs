//! Identity and tenancy agree through events: tenancy's tenant and member events, published to
//! JetStream as tenancy publishes them, decide who may switch into a tenant and with which rights;
//! suspensions and removals revoke the affected sessions.

use crate::support::{TestApp, bearer, claims_of, eventually, unique_email};
use keel_kernel::ErrorCode;
use keel_kernel::auth::permission_matches;
use keel_proto::identity::v1 as pb;
use keel_proto::tenancy::v1 as tenancy;
use keel_testkit::{assert_status, payload};

#[tokio::test]
async fn a_member_of_an_active_tenant_gets_a_token_scoped_to_it_with_their_role() {
    let app = TestApp::spawn().await;
    let (owner, owner_pair) = app.user(&unique_email("owner")).await;
    let (member, member_pair) = app.user(&unique_email("member")).await;
    let tenant = app.tenant_created(owner).await;
    app.member_added(tenant, member, "viewer").await;

    let scoped = app
        .switch_eventually(&owner_pair.access_token, tenant)
        .await;
    assert_eq!(scoped.tenant_id, tenant.to_string());
    let claims = claims_of(&scoped.access_token);
    assert_eq!(claims.tid, Some(tenant));
    assert_eq!(claims.roles, vec!["owner"]);
    assert_eq!(claims.perms, vec!["*"]);
    assert_eq!(
        claims.sid,
        claims_of(&owner_pair.access_token).sid,
        "the session stays the same"
    );

    let viewer = app
        .switch_eventually(&member_pair.access_token, tenant)
        .await;
    let claims = claims_of(&viewer.access_token);
    assert_eq!(claims.roles, vec!["viewer"]);
    assert!(
        claims
            .perms
            .iter()
            .any(|p| permission_matches(p, "identity.role.list"))
    );
    assert!(
        !claims
            .perms
            .iter()
            .any(|p| permission_matches(p, "identity.api_key.create"))
    );

    // Refreshing a scoped session keeps its scope.
    let refreshed = app.refresh(&viewer.refresh_token).await.expect("refresh");
    assert_eq!(refreshed.tenant_id, tenant.to_string());
    assert_eq!(claims_of(&refreshed.access_token).tid, Some(tenant));
}

#[tokio::test]
async fn a_non_member_cannot_switch_into_a_tenant() {
    let app = TestApp::spawn().await;
    let (owner, owner_pair) = app.user(&unique_email("owner")).await;
    let (_, stranger) = app.user(&unique_email("stranger")).await;
    let tenant = app.tenant_created(owner).await;
    app.switch_eventually(&owner_pair.access_token, tenant)
        .await;

    let refused = app
        .switch(&stranger.access_token, tenant)
        .await
        .expect_err("not a member");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let unknown = app
        .switch(&stranger.access_token, keel_kernel::TenantId::new())
        .await
        .expect_err("no such tenant");
    assert_eq!(unknown.code(), refused.code());
    assert_eq!(
        unknown.message(),
        refused.message(),
        "unknown and forbidden look alike"
    );
}

#[tokio::test]
async fn a_pending_tenant_cannot_be_switched_into_until_approved() {
    let app = TestApp::spawn().await;
    let (owner, pair) = app.user(&unique_email("pending")).await;
    let tenant = keel_kernel::TenantId::new();
    let created = tenancy::TenantCreated {
        tenant_id: tenant.to_string(),
        name: "Pending".into(),
        slug: "pending".into(),
        state: tenancy::TenantState::PendingApproval as i32,
        created_by: owner.to_string(),
    };
    app.publish_versioned(
        "tenancy.tenant.created",
        tenant,
        tenant.to_string(),
        1,
        &created,
    )
    .await;
    app.member_added(tenant, owner, "owner").await;
    // Wait until the membership has been consumed, then the switch must still fail.
    eventually(|| async {
        let admin = app.admin_pool().await;
        let row: Option<(String,)> =
            sqlx::query_as("SELECT role FROM identity.role_bindings WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(&admin)
                .await
                .unwrap();
        row
    })
    .await;
    // pending
    assert_status(
        app.switch(&pair.access_token, tenant).await,
        ErrorCode::Authz,
    );

    let approved = tenancy::TenantApproved {
        tenant_id: tenant.to_string(),
        approved_by: String::new(),
    };
    app.publish_versioned(
        "tenancy.tenant.approved",
        tenant,
        tenant.to_string(),
        2,
        &approved,
    )
    .await;
    app.switch_eventually(&pair.access_token, tenant).await;
}

#[tokio::test]
async fn suspending_a_tenant_revokes_its_sessions_and_later_switches_and_refreshes_fail() {
    let app = TestApp::spawn().await;
    let (owner, pair) = app.user(&unique_email("suspend")).await;
    let tenant = app.tenant_created(owner).await;
    let other_tenant = app.tenant_created(owner).await;
    let scoped = app.switch_eventually(&pair.access_token, tenant).await;

    // A second session, scoped to the other tenant, must survive.
    let second = app
        .login_with(&app_email(&app, owner).await, crate::support::PASSWORD)
        .await
        .expect("login");
    let elsewhere = app
        .switch_eventually(&second.access_token, other_tenant)
        .await;

    app.tenant_suspended(tenant).await;
    let sid = claims_of(&scoped.access_token).sid.unwrap();
    let revoked = app
        .published_eventually("identity.session.revoked", |e| e.aggregate_id == sid)
        .await;
    let payload = payload::<pb::SessionRevoked>(&revoked);
    assert_eq!(
        payload.reason,
        pb::SessionRevokeReason::TenantSuspended as i32
    );
    assert_eq!(payload.tenant_id, tenant.to_string());
    assert_eq!(revoked.tenant_id, tenant.to_string());

    // revoked
    assert_status(app.refresh(&scoped.refresh_token).await, ErrorCode::Authn);
    // suspended
    assert_status(
        app.switch(&elsewhere.access_token, tenant).await,
        ErrorCode::Authz,
    );
    app.refresh(&elsewhere.refresh_token)
        .await
        .expect("a session of another tenant lives on");

    app.tenant_reactivated(tenant).await;
    let again = app.login(&app_email(&app, owner).await).await;
    app.switch_eventually(&again.access_token, tenant).await;
}

#[tokio::test]
async fn removing_a_member_revokes_their_sessions_for_that_tenant_only() {
    let app = TestApp::spawn().await;
    let (owner, owner_pair) = app.user(&unique_email("owner")).await;
    let (member, member_pair) = app.user(&unique_email("member")).await;
    let tenant = app.tenant_created(owner).await;
    app.member_added(tenant, member, "member").await;
    let member_scoped = app
        .switch_eventually(&member_pair.access_token, tenant)
        .await;
    let owner_scoped = app
        .switch_eventually(&owner_pair.access_token, tenant)
        .await;

    app.member_removed(tenant, member).await;
    let sid = claims_of(&member_scoped.access_token).sid.unwrap();
    let revoked = app
        .published_eventually("identity.session.revoked", |e| e.aggregate_id == sid)
        .await;
    let payload = payload::<pb::SessionRevoked>(&revoked);
    assert_eq!(
        payload.reason,
        pb::SessionRevokeReason::MemberRemoved as i32
    );

    // removed member refreshing
    assert_status(
        app.refresh(&member_scoped.refresh_token).await,
        ErrorCode::Authn,
    );
    let relogin = app.login(&app_email(&app, member).await).await;
    // no longer a member
    assert_status(
        app.switch(&relogin.access_token, tenant).await,
        ErrorCode::Authz,
    );
    app.refresh(&owner_scoped.refresh_token)
        .await
        .expect("the owner is unaffected");
}

#[tokio::test]
async fn an_older_event_arriving_late_does_not_undo_a_newer_one() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.user(&unique_email("owner")).await;
    let (member, member_pair) = app.user(&unique_email("member")).await;
    let tenant = app.tenant_created(owner).await; // membership version 1 (the owner)
    let added = tenancy::MemberAdded {
        tenant_id: tenant.to_string(),
        user_id: member.to_string(),
        role: "admin".into(),
    };
    let removed = tenancy::MemberRemoved {
        tenant_id: tenant.to_string(),
        user_id: member.to_string(),
    };
    let aggregate = format!("{tenant}/{member}");
    app.publish_versioned("tenancy.member.added", tenant, aggregate.clone(), 2, &added)
        .await;
    app.switch_eventually(&member_pair.access_token, tenant)
        .await;
    app.publish_versioned(
        "tenancy.member.removed",
        tenant,
        aggregate.clone(),
        3,
        &removed,
    )
    .await;
    eventually(|| async {
        app.switch(&member_pair.access_token, tenant)
            .await
            .is_err()
            .then_some(())
    })
    .await;

    // A redelivered or reordered `member.added` of version 2 must not resurrect the membership.
    app.publish_versioned("tenancy.member.added", tenant, aggregate, 2, &added)
        .await;
    let (marker, _) = app.user(&unique_email("marker")).await;
    app.member_added(tenant, marker, "viewer").await; // a later event: once consumed, so was the stale one
    eventually(|| async {
        let admin = app.admin_pool().await;
        sqlx::query_as::<_, (String,)>(
            "SELECT role FROM identity.role_bindings WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant.as_uuid())
        .bind(marker.as_uuid())
        .fetch_optional(&admin)
        .await
        .unwrap()
    })
    .await;
    let relogin = app.login(&app_email(&app, member).await).await;
    // still removed
    assert_status(
        app.switch(&relogin.access_token, tenant).await,
        ErrorCode::Authz,
    );
}

#[tokio::test]
async fn a_role_change_reaches_the_token_at_the_next_refresh() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.user(&unique_email("owner")).await;
    let (member, member_pair) = app.user(&unique_email("member")).await;
    let tenant = app.tenant_created(owner).await;
    app.member_added(tenant, member, "viewer").await;
    let scoped = app
        .switch_eventually(&member_pair.access_token, tenant)
        .await;
    assert_eq!(claims_of(&scoped.access_token).roles, vec!["viewer"]);

    let changed = tenancy::MemberRoleChanged {
        tenant_id: tenant.to_string(),
        user_id: member.to_string(),
        old_role: "viewer".into(),
        new_role: "admin".into(),
    };
    app.publish_versioned(
        "tenancy.member.role_changed",
        tenant,
        format!("{tenant}/{member}"),
        10,
        &changed,
    )
    .await;
    // Each refresh rotates, so poll with the newest token.
    let mut refresh_token = scoped.refresh_token;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pair = loop {
        let pair = app.refresh(&refresh_token).await.expect("refresh");
        if claims_of(&pair.access_token).roles == vec!["admin"] {
            break pair;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the role change never arrived"
        );
        refresh_token = pair.refresh_token;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        claims_of(&pair.access_token)
            .perms
            .iter()
            .any(|p| permission_matches(p, "identity.api_key.create"))
    );
}

#[tokio::test]
async fn the_consumer_takes_each_event_once_even_when_it_is_delivered_again() {
    let app = TestApp::spawn().await;
    let (owner, pair) = app.user(&unique_email("owner")).await;
    let tenant = app.tenant_created(owner).await;
    app.switch_eventually(&pair.access_token, tenant).await;
    let admin = app.admin_pool().await;
    let (inbox,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM identity.inbox WHERE consumer = 'identity-tenancy'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(inbox, 2, "tenant.created and member.added");
    let (dead,): (i64,) = sqlx::query_as("SELECT count(*) FROM identity.dead_letters")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(dead, 0);
}

#[tokio::test]
async fn an_unscoped_token_cannot_call_tenant_scoped_methods() {
    let app = TestApp::spawn().await;
    let (owner, pair) = app.user(&unique_email("owner")).await;
    let tenant = app.tenant_created(owner).await;
    app.switch_eventually(&pair.access_token, tenant).await;
    // unscoped
    assert_status(
        app.access()
            .list_api_keys(bearer(
                pb::ListApiKeysRequest {
                    tenant_id: tenant.to_string(),
                    ..Default::default()
                },
                &pair.access_token,
            ))
            .await,
        ErrorCode::Authz,
    );
}

/// The email of a registered user (the tests register with unique emails).
async fn app_email(app: &TestApp, user: keel_kernel::UserId) -> String {
    let admin = app.admin_pool().await;
    let (email,): (String,) = sqlx::query_as("SELECT email FROM identity.users WHERE id = $1")
        .bind(user.as_uuid())
        .fetch_one(&admin)
        .await
        .unwrap();
    email
}
