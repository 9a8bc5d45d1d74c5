//! Issue 8, item 4: the verification token never travels in an event; the notifier obtains a
//! fresh one over gRPC with its service token.

use crate::support::{TestApp, bearer, unique_email};
use keel_kernel::ErrorCode;
use keel_proto::identity::v1 as pb;
use keel_testkit::assert_status;

/// The event as it used to be laid out: field 3 carried the raw token.
#[derive(Clone, PartialEq, prost::Message)]
struct EventWithTokenField {
    #[prost(string, tag = "3")]
    token: String,
}

fn issue(verification_id: String) -> pb::IssueVerificationTokenRequest {
    pb::IssueVerificationTokenRequest { verification_id }
}

#[tokio::test]
async fn the_verification_requested_event_carries_no_token() {
    let app = TestApp::spawn().await;
    let user = app.register(&unique_email("secret")).await;
    let event = app
        .published_eventually("identity.user.verification_requested", |e| {
            e.aggregate_id == user.to_string()
        })
        .await;
    let bytes = event.payload.as_ref().map(|p| p.value.clone()).unwrap();
    let decoded: EventWithTokenField = prost::Message::decode(bytes.as_slice()).unwrap();
    assert!(decoded.token.is_empty(), "the event carries a token");
    let requested: pb::UserVerificationRequested = keel_testkit::payload(&event);
    assert!(!requested.verification_id.is_empty());
}

#[tokio::test]
async fn a_service_gets_a_fresh_token_that_verifies_the_email_and_retires_the_previous_one() {
    let app = TestApp::spawn().await;
    let email = unique_email("notify");
    let user = app.register(&email).await;
    let id = app.verification_id(user).await;
    let service = app.service_token(&["identity.verification.issue"]);
    let first = app
        .auth()
        .issue_verification_token(bearer(issue(id.clone()), &service))
        .await
        .expect("issue")
        .into_inner();
    assert_eq!(first.email, email);
    assert_eq!(first.user_id, user.to_string());
    let second = app
        .auth()
        .issue_verification_token(bearer(issue(id.clone()), &service))
        .await
        .expect("issue again")
        .into_inner();
    // rotated: the first no longer works
    assert_status(
        app.auth()
            .verify_email(pb::VerifyEmailRequest { token: first.token })
            .await,
        ErrorCode::Validation,
    );
    let verified = app
        .auth()
        .verify_email(pb::VerifyEmailRequest {
            token: second.token,
        })
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.email_verified);
    // used: nothing more to issue
    assert_status(
        app.auth()
            .issue_verification_token(bearer(issue(id), &service))
            .await,
        ErrorCode::NotFound,
    );
}

#[tokio::test]
async fn a_user_token_cannot_issue_verification_tokens() {
    let app = TestApp::spawn().await;
    let (victim, _) = app.user(&unique_email("victim")).await;
    let id = app.verification_id(victim).await;
    // An owner's role patterns are as broad as roles get.
    let (_, _, owner) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let (_, plain) = app.user(&unique_email("plain")).await;
    for token in [&owner.access_token, &plain.access_token] {
        assert_status(
            app.auth()
                .issue_verification_token(bearer(issue(id.clone()), token))
                .await,
            ErrorCode::Authz,
        );
    }
    // A service without the permission is refused too.
    assert_status(
        app.auth()
            .issue_verification_token(bearer(issue(id), &app.service_token(&[])))
            .await,
        ErrorCode::Authz,
    );
}
