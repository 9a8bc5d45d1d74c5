//! Issue 8, items 1 and 3: nobody hands out rights they do not hold, and platform rights follow
//! a verified address only. Plus the email claims tenancy binds invitations to.

use crate::support::{TestApp, bearer, claims_of, unique_email};
use keel_kernel::ErrorCode;
use keel_proto::identity::v1 as pb;
use keel_testkit::assert_status;

fn role(tenant: &str, permissions: &[&str]) -> pb::CreateRoleRequest {
    pb::CreateRoleRequest {
        tenant_id: tenant.into(),
        role: Some(pb::Role {
            name: "escalator".into(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            ..Default::default()
        }),
    }
}

fn key(tenant: &str, scopes: &[&str]) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        tenant_id: tenant.into(),
        api_key: Some(pb::ApiKey {
            name: "escalator".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }),
    }
}

/// An admin of a fresh tenant, and their scoped access token.
async fn admin_of_a_tenant(app: &TestApp) -> (keel_kernel::TenantId, String) {
    let (_, tenant, _) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let (admin, pair) = app.user(&unique_email("admin")).await;
    app.member_added(tenant, admin, "admin").await;
    let scoped = app.switch_eventually(&pair.access_token, tenant).await;
    (tenant, scoped.access_token)
}

#[tokio::test]
async fn an_admin_cannot_create_a_role_with_rights_they_lack() {
    let app = TestApp::spawn().await;
    let (tenant, admin) = admin_of_a_tenant(&app).await;
    assert_status(
        app.access()
            .create_role(bearer(
                role(
                    &tenant.to_string(),
                    &["delivery.task.read", "tenancy.tenant.delete"],
                ),
                &admin,
            ))
            .await,
        ErrorCode::Authz,
    );
    // What they do hold, they may still put in a role.
    app.access()
        .create_role(bearer(
            role(&tenant.to_string(), &["delivery.task.read"]),
            &admin,
        ))
        .await
        .expect("a role within the admin's rights");
}

#[tokio::test]
async fn an_admin_cannot_create_an_api_key_scoped_to_rights_they_lack() {
    let app = TestApp::spawn().await;
    let (tenant, admin) = admin_of_a_tenant(&app).await;
    assert_status(
        app.access()
            .create_api_key(bearer(
                key(&tenant.to_string(), &["tenancy.tenant.delete"]),
                &admin,
            ))
            .await,
        ErrorCode::Authz,
    );
}

#[tokio::test]
async fn registering_the_configured_admin_address_without_verifying_it_grants_nothing() {
    let email = unique_email("root");
    let configured = email.clone();
    let app = TestApp::spawn_with(move |s| s.platform_admins = vec![configured]).await;
    let squatter = app.register(&email).await;
    let unverified = claims_of(&app.login(&email).await.access_token);
    assert!(unverified.roles.is_empty(), "{:?}", unverified.roles);
    assert!(unverified.perms.is_empty(), "{:?}", unverified.perms);

    // Once the address is proven, the same account is a platform admin.
    app.verify(squatter).await;
    let verified = claims_of(&app.login(&email).await.access_token);
    assert_eq!(verified.roles, vec!["platform_admin"]);
    assert!(verified.has_permission("tenancy.tenant.approve"));
}

#[tokio::test]
async fn a_token_issued_after_verification_says_the_email_is_verified() {
    let app = TestApp::spawn().await;
    let email = unique_email("claims");
    let (user, before) = app.user(&email).await;
    let claims = claims_of(&before.access_token);
    assert_eq!(claims.email.as_deref(), Some(email.as_str()));
    assert!(!claims.email_verified);

    app.verify(user).await;
    let refreshed = app.refresh(&before.refresh_token).await.expect("refresh");
    let claims = claims_of(&refreshed.access_token);
    assert_eq!(claims.email.as_deref(), Some(email.as_str()));
    assert!(claims.email_verified);
}
