//! Invitations are bound to the invitee (issue 8, items 9 and 4): only the user whose verified
//! address was invited can accept, and the token never travels in an event.

use keel_kernel::auth::roles;
use keel_kernel::{ErrorCode, UserId};
use keel_proto::tenancy::v1 as pb;
use keel_tenancy::domain::permissions;
use keel_testkit::assert_status;
use keel_testkit::tokens::TokenSpec;

use crate::support::TestApp;

async fn invite(app: &TestApp, owner: UserId, tenant: &str, email: &str) -> pb::Invitation {
    app.members(&app.tenant_token(owner, tenant, roles::OWNER))
        .create_invitation(pb::CreateInvitationRequest {
            tenant_id: tenant.into(),
            email: email.into(),
            role: roles::MEMBER.into(),
        })
        .await
        .expect("invite")
        .into_inner()
}

fn accept(token: &str) -> pb::AcceptInvitationRequest {
    pb::AcceptInvitationRequest {
        token: token.into(),
    }
}

#[tokio::test]
async fn another_user_holding_the_invitation_token_cannot_accept_it() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let invitation = invite(&app, owner, &tenant.id, "ann@example.com").await;

    let mallory = UserId::new();
    let status = assert_status(
        app.members(&app.verified_user_token(mallory, "mallory@example.com"))
            .accept_invitation(accept(&invitation.token))
            .await,
        ErrorCode::Authz,
    );
    assert!(status.message().contains("another address"), "{status:?}");
    // A user token without any address is refused as well.
    assert_status(
        app.members(&app.user_token(mallory))
            .accept_invitation(accept(&invitation.token))
            .await,
        ErrorCode::FailedPrecondition,
    );
    // The invitation is still there for Ann.
    app.members(&app.verified_user_token(UserId::new(), "ann@example.com"))
        .accept_invitation(accept(&invitation.token))
        .await
        .expect("the invitee accepts");
    app.stop().await;
}

#[tokio::test]
async fn a_user_whose_email_is_not_verified_cannot_accept_an_invitation_to_it() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let invitation = invite(&app, owner, &tenant.id, "ann@example.com").await;

    // Whoever registers the invited address first, without proving they own it.
    let squatter = app
        .issuer
        .token(TokenSpec::user(UserId::new()).email("ann@example.com", false));
    let status = assert_status(
        app.members(&squatter)
            .accept_invitation(accept(&invitation.token))
            .await,
        ErrorCode::FailedPrecondition,
    );
    assert!(status.message().contains("verif"), "{status:?}");
    app.stop().await;
}

#[tokio::test]
async fn the_invitee_accepts_in_any_letter_case_and_joins_with_their_own_address() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let invitation = invite(&app, owner, &tenant.id, "Ann.Smith@Example.com").await;

    let ann = UserId::new();
    let member = app
        .members(&app.verified_user_token(ann, "ANN.smith@EXAMPLE.com"))
        .accept_invitation(accept(&invitation.token))
        .await
        .expect("the invitee accepts")
        .into_inner();
    assert_eq!(member.user_id, ann.to_string());
    assert_eq!(member.email, "ANN.smith@EXAMPLE.com");
    app.stop().await;
}

#[tokio::test]
async fn the_invitation_created_event_carries_no_token() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let invitation = invite(&app, owner, &tenant.id, "ann@example.com").await;

    let created = app
        .events()
        .await
        .of_type("tenancy.invitation.created", 1)
        .await;
    let [event] = created.as_slice() else {
        panic!("one invitation event, got {created:?}");
    };
    let bytes = &event.payload.as_ref().expect("a payload").value;
    let secret = invitation.token.rsplit('_').next().expect("secret part");
    let raw = String::from_utf8_lossy(bytes);
    assert!(!raw.contains(secret), "the token is in the event: {raw}");
    assert!(!raw.contains("kinv_"), "a token is in the event: {raw}");
    assert!(
        raw.contains(&invitation.id),
        "the event names the invitation"
    );
    app.stop().await;
}

fn issue(invitation: &pb::Invitation) -> pb::IssueInvitationTokenRequest {
    pb::IssueInvitationTokenRequest {
        tenant_id: invitation.tenant_id.clone(),
        invitation_id: invitation.id.clone(),
    }
}

/// What the notifier holds: a service token with the one permission the RPC declares.
fn notifier_token(app: &TestApp) -> String {
    app.issuer
        .token(TokenSpec::service("notifier").perm(permissions::INVITATION_TOKEN_ISSUE))
}

#[tokio::test]
async fn a_service_gets_a_fresh_invitation_token_that_works_and_the_old_one_stops_working() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let invitation = invite(&app, owner, &tenant.id, "ann@example.com").await;

    let issued = app
        .members(&notifier_token(&app))
        .issue_invitation_token(issue(&invitation))
        .await
        .expect("the notifier gets a token")
        .into_inner();
    assert!(issued.token.starts_with("kinv_"), "{issued:?}");
    assert_ne!(issued.token, invitation.token);
    assert_eq!(
        (issued.id.as_str(), issued.email.as_str()),
        (invitation.id.as_str(), "ann@example.com")
    );

    let ann = app.verified_user_token(UserId::new(), "ann@example.com");
    assert_status(
        app.members(&ann)
            .accept_invitation(accept(&invitation.token))
            .await,
        ErrorCode::NotFound,
    );
    app.members(&ann)
        .accept_invitation(accept(&issued.token))
        .await
        .expect("the fresh token is accepted");
    // Once accepted, no new token is issued for it.
    assert_status(
        app.members(&notifier_token(&app))
            .issue_invitation_token(issue(&invitation))
            .await,
        ErrorCode::FailedPrecondition,
    );
    app.stop().await;
}

#[tokio::test]
async fn a_user_or_api_key_cannot_get_a_fresh_invitation_token() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let invitation = invite(&app, owner, &tenant.id, "ann@example.com").await;
    let tenant_id: keel_kernel::TenantId = tenant.id.parse().expect("tenant id");

    let owner_token = app.tenant_token(owner, &tenant.id, roles::OWNER);
    let key = app.issuer.token(
        TokenSpec::api_key("key-1", tenant_id)
            .perm("*")
            .scopes(["*"]),
    );
    let unscoped = app
        .issuer
        .token(TokenSpec::any_user().perm(permissions::INVITATION_TOKEN_ISSUE));
    let service_without_the_right = app.issuer.token(TokenSpec::service("billing"));
    for token in [owner_token, key, unscoped, service_without_the_right] {
        assert_status(
            app.members(&token)
                .issue_invitation_token(issue(&invitation))
                .await,
            ErrorCode::Authz,
        );
    }
    // The original token still works: nothing was rotated.
    app.members(&app.verified_user_token(UserId::new(), "ann@example.com"))
        .accept_invitation(accept(&invitation.token))
        .await
        .expect("accept");
    app.stop().await;
}
