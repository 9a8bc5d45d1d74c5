//! Issue 8, item 12: every revocation is announced with what the gateway needs to deny at once
//! (session or key, tenant, and when the last token issued for it expires), and API keys die
//! with their creator's rights.

use crate::support::{PASSWORD, TestApp, bearer, claims_of, unique_email};
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::identity::v1 as pb;
use keel_proto::tenancy::v1 as tenancy;
use keel_testkit::{assert_status, payload};

/// Wait for the `session.revoked` of the session `access_token` belongs to, and check it says
/// which session, which tenant, why, and an expiry no earlier than the token's.
async fn assert_announced(
    app: &TestApp,
    access_token: &str,
    tenant: Option<TenantId>,
    reason: pb::SessionRevokeReason,
) {
    let claims = claims_of(access_token);
    let sid = claims.sid.clone().unwrap();
    let event = app
        .published_eventually("identity.session.revoked", |e| e.aggregate_id == sid)
        .await;
    let revoked = payload::<pb::SessionRevoked>(&event);
    assert_eq!(revoked.session_id, sid);
    assert_eq!(revoked.reason, reason as i32);
    assert_eq!(
        revoked.tenant_id,
        tenant.map(|t| t.to_string()).unwrap_or_default()
    );
    let expires = revoked.tokens_expire_time.expect("tokens_expire_time");
    assert!(
        expires.seconds >= claims.exp,
        "deny until {} but the token lives until {}",
        expires.seconds,
        claims.exp
    );
}

#[tokio::test]
async fn logout_announces_the_revoked_session_until_its_tokens_expire() {
    let app = TestApp::spawn().await;
    let (_, pair) = app.user(&unique_email("logout")).await;
    app.auth()
        .logout(bearer(pb::LogoutRequest {}, &pair.access_token))
        .await
        .expect("logout");
    assert_announced(
        &app,
        &pair.access_token,
        None,
        pb::SessionRevokeReason::Logout,
    )
    .await;
}

#[tokio::test]
async fn revoking_a_session_from_the_list_announces_it() {
    let app = TestApp::spawn().await;
    let email = unique_email("list");
    let (_, laptop) = app.user(&email).await;
    let phone = app.login(&email).await;
    let sid = claims_of(&phone.access_token).sid.unwrap();
    app.users()
        .revoke_session(bearer(
            pb::RevokeSessionRequest { session_id: sid },
            &laptop.access_token,
        ))
        .await
        .expect("revoke");
    assert_announced(
        &app,
        &phone.access_token,
        None,
        pb::SessionRevokeReason::UserRequest,
    )
    .await;
}

#[tokio::test]
async fn changing_the_password_announces_every_other_revoked_session() {
    let app = TestApp::spawn().await;
    let email = unique_email("password");
    let (_, laptop) = app.user(&email).await;
    let phone = app.login(&email).await;
    app.auth()
        .change_password(bearer(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "A different horse 43".into(),
            },
            &laptop.access_token,
        ))
        .await
        .expect("change password");
    assert_announced(
        &app,
        &phone.access_token,
        None,
        pb::SessionRevokeReason::PasswordChanged,
    )
    .await;
}

#[tokio::test]
async fn a_reused_refresh_token_announces_the_revoked_session() {
    let app = TestApp::spawn().await;
    let (_, first) = app.user(&unique_email("reuse")).await;
    let second = app.refresh(&first.refresh_token).await.expect("refresh");
    assert_status(app.refresh(&first.refresh_token).await, ErrorCode::Authn);
    // The newest token of the session is what the deny-list must outlive.
    assert_announced(
        &app,
        &second.access_token,
        None,
        pb::SessionRevokeReason::RefreshTokenReuse,
    )
    .await;
}

#[tokio::test]
async fn removing_a_member_announces_their_revoked_session_in_that_tenant() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.user(&unique_email("owner")).await;
    let tenant = app.tenant_created(owner).await;
    let (member, pair) = app.user(&unique_email("member")).await;
    app.member_added(tenant, member, "member").await;
    let scoped = app.switch_eventually(&pair.access_token, tenant).await;
    app.member_removed(tenant, member).await;
    assert_announced(
        &app,
        &scoped.access_token,
        Some(tenant),
        pb::SessionRevokeReason::MemberRemoved,
    )
    .await;
}

#[tokio::test]
async fn suspending_a_tenant_announces_its_revoked_sessions() {
    let app = TestApp::spawn().await;
    let (_, tenant, scoped) = app.owner_of_new_tenant(&unique_email("owner")).await;
    app.tenant_suspended(tenant).await;
    assert_announced(
        &app,
        &scoped.access_token,
        Some(tenant),
        pb::SessionRevokeReason::TenantSuspended,
    )
    .await;
}

fn new_key(tenant: TenantId, scopes: &[&str]) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        tenant_id: tenant.to_string(),
        api_key: Some(pb::ApiKey {
            name: "ci".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }),
    }
}

async fn exchange(
    app: &TestApp,
    secret: &str,
) -> Result<pb::ExchangeApiKeyResponse, tonic::Status> {
    app.auth()
        .exchange_api_key(pb::ExchangeApiKeyRequest {
            secret: secret.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn deleting_an_api_key_announces_it_until_its_tokens_expire() {
    let app = TestApp::spawn().await;
    let (_, tenant, owner) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let created = app
        .access()
        .create_api_key(bearer(
            new_key(tenant, &["delivery.task.read"]),
            &owner.access_token,
        ))
        .await
        .expect("create")
        .into_inner();
    let token = exchange(&app, &created.secret).await.expect("exchange");
    app.access()
        .delete_api_key(bearer(
            pb::DeleteApiKeyRequest {
                tenant_id: tenant.to_string(),
                key_id: created.id.clone(),
            },
            &owner.access_token,
        ))
        .await
        .expect("delete");
    let event = app
        .published_eventually("identity.api_key.revoked", |e| e.aggregate_id == created.id)
        .await;
    let revoked = payload::<pb::ApiKeyRevoked>(&event);
    assert_eq!(revoked.key_id, created.id);
    assert_eq!(revoked.tenant_id, tenant.to_string());
    let expires = revoked.tokens_expire_time.expect("tokens_expire_time");
    assert!(expires.seconds >= claims_of(&token.access_token).exp);
}

/// A member with `role` in a fresh tenant, their scoped token, and a key they created.
async fn key_of_a_member(
    app: &TestApp,
    role: &str,
    scopes: &[&str],
) -> (TenantId, keel_kernel::UserId, String) {
    let (owner, _) = app.user(&unique_email("owner")).await;
    let tenant = app.tenant_created(owner).await;
    let (member, pair) = app.user(&unique_email("creator")).await;
    app.member_added(tenant, member, role).await;
    let scoped = app.switch_eventually(&pair.access_token, tenant).await;
    let created = app
        .access()
        .create_api_key(bearer(new_key(tenant, scopes), &scoped.access_token))
        .await
        .expect("create")
        .into_inner();
    exchange(app, &created.secret)
        .await
        .expect("works at first");
    (tenant, member, created.secret)
}

#[tokio::test]
async fn an_api_key_stops_working_when_its_creator_leaves_the_tenant() {
    let app = TestApp::spawn().await;
    let (tenant, creator, secret) = key_of_a_member(&app, "admin", &["delivery.task.read"]).await;
    app.member_removed(tenant, creator).await;
    keel_testkit::eventually(|| async { exchange(&app, &secret).await.err() }).await;
    assert_status(exchange(&app, &secret).await, ErrorCode::Authn);
}

#[tokio::test]
async fn an_api_key_stops_working_when_its_creator_no_longer_holds_its_scopes() {
    let app = TestApp::spawn().await;
    let (tenant, creator, secret) = key_of_a_member(&app, "admin", &["delivery.task.create"]).await;
    let demoted = tenancy::MemberRoleChanged {
        tenant_id: tenant.to_string(),
        user_id: creator.to_string(),
        old_role: "admin".into(),
        new_role: "viewer".into(),
    };
    app.publish_versioned(
        "tenancy.member.role_changed",
        tenant,
        format!("{tenant}/{creator}"),
        100,
        &demoted,
    )
    .await;
    keel_testkit::eventually(|| async { exchange(&app, &secret).await.err() }).await;
    assert_status(exchange(&app, &secret).await, ErrorCode::Authn);
}
