//! Invitations are bound to the invitee (issue 8, items 9 and 4): only the user whose verified
//! address was invited can accept, and the token never travels in an event.

use keel_kernel::auth::roles;
use keel_kernel::{ErrorCode, UserId};
use keel_proto::tenancy::v1 as pb;
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
