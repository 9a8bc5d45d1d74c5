//! Password reset: request by email (no enumeration, rate-limited), the notifier's token by reset
//! id (never in the stream), and the single-use reset that revokes every session.

use std::time::Duration;

use keel_kernel::{Error, ErrorCode, UserId};
use keel_proto::identity::v1 as pb;
use keel_testkit::assert_status;

use crate::support::{PASSWORD, TestApp, bearer, from_ip, unique_email};

const NEW_PASSWORD: &str = "Brand new secret 77";

fn request(email: &str) -> pb::RequestPasswordResetRequest {
    pb::RequestPasswordResetRequest {
        email: email.into(),
    }
}

fn reset(token: &str, new_password: &str) -> pb::ResetPasswordRequest {
    pb::ResetPasswordRequest {
        token: token.into(),
        new_password: new_password.into(),
    }
}

impl TestApp {
    /// The latest `password_reset_requested` event of `user`, once published.
    async fn reset_requested(&self, user: UserId) -> pb::PasswordResetRequested {
        self.published_eventually("identity.user.password_reset_requested", |e| {
            e.aggregate_id == user.to_string()
        })
        .await;
        let events = self
            .published("identity.user.password_reset_requested")
            .await;
        let latest = events
            .iter()
            .rev()
            .find(|e| e.aggregate_id == user.to_string())
            .unwrap();
        keel_testkit::payload(latest)
    }

    async fn issue_reset_token(
        &self,
        reset_id: &str,
    ) -> Result<pb::IssuePasswordResetTokenResponse, tonic::Status> {
        self.auth()
            .issue_password_reset_token(bearer(
                pb::IssuePasswordResetTokenRequest {
                    reset_id: reset_id.into(),
                },
                &self.service_token(&["identity.password_reset.issue"]),
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// What the user does after "forgot password": request, then the token from the mail.
    async fn reset_token(&self, email: &str, user: UserId) -> String {
        self.auth()
            .request_password_reset(request(email))
            .await
            .expect("request a reset");
        let requested = self.reset_requested(user).await;
        self.issue_reset_token(&requested.reset_id)
            .await
            .expect("issue a reset token")
            .token
    }
}

#[tokio::test]
async fn a_reset_request_answers_the_same_for_an_unknown_email_and_its_event_carries_no_token() {
    let app = TestApp::spawn().await;
    let email = unique_email("known");
    let user = app.register(&email).await;
    app.auth()
        .request_password_reset(request(&unique_email("nobody")))
        .await
        .expect("an unknown email gets the same empty answer");
    app.auth()
        .request_password_reset(request(&email.to_uppercase()))
        .await
        .expect("a known email, in any case");
    let requested = app.reset_requested(user).await;
    assert_eq!(requested.email, email);
    assert!(!requested.reset_id.is_empty());
    assert!(requested.expire_time.is_some());
    // Only the known account's request produced an event.
    let events = app
        .published("identity.user.password_reset_requested")
        .await;
    assert_eq!(events.len(), 1);
    // The event has no field holding a token: issuing one returns a value found nowhere in it.
    let issued = app.issue_reset_token(&requested.reset_id).await.unwrap();
    let raw = events[0].payload.as_ref().unwrap().value.clone();
    assert!(
        !String::from_utf8_lossy(&raw).contains(&issued.token),
        "the token is not in the stream"
    );

    let missing = assert_status(
        app.auth().request_password_reset(request("")).await,
        ErrorCode::Validation,
    );
    assert_eq!(Error::from_status(&missing).violations()[0].field, "email");
}

#[tokio::test]
async fn a_reset_sets_the_password_revokes_every_session_verifies_the_email_and_works_once() {
    let app = TestApp::spawn().await;
    let email = unique_email("reset");
    let (user, first) = app.user(&email).await;
    let second = app.login(&email).await;
    let token = app.reset_token(&email, user).await;

    app.auth()
        .reset_password(reset(&token, NEW_PASSWORD))
        .await
        .expect("reset");
    assert_status(app.login_with(&email, PASSWORD).await, ErrorCode::Authn);
    app.login_with(&email, NEW_PASSWORD)
        .await
        .expect("the new password works");
    for pair in [&first, &second] {
        assert_status(app.refresh(&pair.refresh_token).await, ErrorCode::Authn);
    }
    let revoked = app
        .published_eventually("identity.session.revoked", |e| {
            keel_testkit::payload::<pb::SessionRevoked>(e).reason
                == pb::SessionRevokeReason::PasswordReset as i32
        })
        .await;
    assert_eq!(
        keel_testkit::payload::<pb::SessionRevoked>(&revoked).user_id,
        user.to_string()
    );
    let me = app
        .users()
        .get_me(bearer(
            pb::GetMeRequest {},
            &app.login_with(&email, NEW_PASSWORD)
                .await
                .unwrap()
                .access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(me.email_verified, "the reset mail proved the address");

    // Single use.
    let again = assert_status(
        app.auth()
            .reset_password(reset(&token, "Another secret 123"))
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(Error::from_status(&again).violations()[0].field, "token");
}

#[tokio::test]
async fn a_weak_password_is_refused_rule_by_rule_and_leaves_the_token_usable() {
    let app = TestApp::spawn().await;
    let email = unique_email("weak");
    let user = app.register(&email).await;
    let token = app.reset_token(&email, user).await;
    let weak = assert_status(
        app.auth().reset_password(reset(&token, "short")).await,
        ErrorCode::Validation,
    );
    let weak = Error::from_status(&weak);
    assert!(weak.violations().len() >= 2, "{weak:?}");
    assert!(weak.violations().iter().all(|v| v.field == "new_password"));
    app.auth()
        .reset_password(reset(&token, NEW_PASSWORD))
        .await
        .expect("the token still works after a refused password");
}

#[tokio::test]
async fn issuing_rotates_the_token_and_a_new_request_supersedes_the_old_reset() {
    let app = TestApp::spawn().await;
    let email = unique_email("rotate");
    let user = app.register(&email).await;
    app.auth()
        .request_password_reset(request(&email))
        .await
        .unwrap();
    let first_reset = app.reset_requested(user).await.reset_id;
    let first = app.issue_reset_token(&first_reset).await.unwrap().token;
    let second = app.issue_reset_token(&first_reset).await.unwrap().token;
    assert_ne!(first, second);
    assert_status(
        app.auth().reset_password(reset(&first, NEW_PASSWORD)).await,
        ErrorCode::Validation,
    );

    // A second request: the first reset (and its token) is dead.
    app.auth()
        .request_password_reset(request(&email))
        .await
        .unwrap();
    let newer = app
        .published_eventually("identity.user.password_reset_requested", |e| {
            keel_testkit::payload::<pb::PasswordResetRequested>(e).reset_id != first_reset
        })
        .await;
    let newer: pb::PasswordResetRequested = keel_testkit::payload(&newer);
    assert_status(
        app.issue_reset_token(&first_reset).await,
        ErrorCode::NotFound,
    );
    assert_status(
        app.auth()
            .reset_password(reset(&second, NEW_PASSWORD))
            .await,
        ErrorCode::Validation,
    );
    let token = app.issue_reset_token(&newer.reset_id).await.unwrap().token;
    app.auth()
        .reset_password(reset(&token, NEW_PASSWORD))
        .await
        .expect("the newest reset works");
}

#[tokio::test]
async fn concurrent_uses_of_one_token_succeed_exactly_once() {
    let app = TestApp::spawn().await;
    let email = unique_email("race");
    let user = app.register(&email).await;
    let token = app.reset_token(&email, user).await;
    let attempts = futures::future::join_all((0..8).map(|i| {
        let mut auth = app.auth();
        let token = token.clone();
        async move {
            auth.reset_password(reset(&token, &format!("Racing password {i}x")))
                .await
                .map(|_| i)
        }
    }))
    .await;
    let winners: Vec<_> = attempts.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{attempts:?}");
    for lost in attempts.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(lost.code(), tonic::Code::InvalidArgument, "{lost:?}");
    }
    app.login_with(&email, &format!("Racing password {}x", winners[0]))
        .await
        .expect("the winner's password is the one set");
}

#[tokio::test]
async fn only_services_holding_the_permission_issue_reset_tokens() {
    let app = TestApp::spawn().await;
    let email = unique_email("who");
    let (user, pair) = app.user(&email).await;
    app.auth()
        .request_password_reset(request(&email))
        .await
        .unwrap();
    let reset_id = app.reset_requested(user).await.reset_id;
    let ask = |token: String| {
        let mut auth = app.auth();
        let reset_id = reset_id.clone();
        async move {
            auth.issue_password_reset_token(bearer(
                pb::IssuePasswordResetTokenRequest { reset_id },
                &token,
            ))
            .await
        }
    };
    assert_status(ask(pair.access_token.clone()).await, ErrorCode::Authz);
    assert_status(
        ask(app.service_token(&["identity.verification.issue"])).await,
        ErrorCode::Authz,
    );
    assert_status(
        app.auth()
            .issue_password_reset_token(pb::IssuePasswordResetTokenRequest {
                reset_id: reset_id.clone(),
            })
            .await,
        ErrorCode::Authn,
    );
    let bad = assert_status(
        app.issue_reset_token("not-an-id").await,
        ErrorCode::Validation,
    );
    assert_eq!(Error::from_status(&bad).violations()[0].field, "reset_id");
}

#[tokio::test]
async fn reset_requests_are_rate_limited_per_email_whether_or_not_it_exists() {
    let app = TestApp::spawn().await;
    let email = unique_email("flood");
    let unknown = unique_email("ghost");
    app.register(&email).await;
    for address in [&email, &unknown] {
        for _ in 0..10 {
            app.auth()
                .request_password_reset(from_ip(request(address), "203.0.113.50"))
                .await
                .expect("within the limit");
        }
        assert_status(
            app.auth()
                .request_password_reset(from_ip(request(address), "203.0.113.51"))
                .await,
            ErrorCode::RateLimit,
        );
    }
    // Asking for resets never locks the account's login.
    app.login(&email).await;
}

#[tokio::test]
async fn an_expired_reset_token_is_refused() {
    let app = TestApp::spawn_with(|settings| settings.tokens.password_reset_ttl_secs = 1).await;
    let email = unique_email("late");
    let user = app.register(&email).await;
    let token = app.reset_token(&email, user).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_status(
        app.auth().reset_password(reset(&token, NEW_PASSWORD)).await,
        ErrorCode::Validation,
    );
    app.login(&email).await;
}
