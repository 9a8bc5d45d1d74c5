//! Email end to end: identity and tenancy publish, notifications consumes, fetches the secret
//! from the owning service, renders and sends through SMTP; the link in the mail works.

use std::time::Duration;

use keel_proto::identity::v1 as identity;
use keel_testkit::eventually;
use prost::Message;

use crate::support::{TestApp, link_token, unique_email};

#[tokio::test]
async fn registering_mails_a_verification_link_that_verifies_the_email() {
    let app = TestApp::spawn().await;
    let email = unique_email("ana");
    let person = app.register(&email, "Ana Lima").await;
    let mail = app.mail_to(&email).await;
    assert_eq!(mail.subject.as_deref(), Some("Confirm your email address"));
    let text = mail.text.as_deref().expect("text body");
    assert!(text.contains("Hello Ana Lima"), "{text}");
    assert!(text.contains("expires in 24 hours"), "{text}");
    let html = mail.html.as_deref().expect("html body");
    assert!(
        html.contains("lang=\"en\"") && html.contains("dir=\"ltr\""),
        "{html}"
    );
    assert!(
        html.contains("href=\"http://app.test/verify-email?token="),
        "{html}"
    );
    assert_eq!(mail.header("Content-Language").as_deref(), Some("en"));

    let token = link_token(&mail, "/verify-email?token=");
    let user = app
        .auth()
        .verify_email(identity::VerifyEmailRequest {
            token: token.clone(),
        })
        .await
        .expect("the link verifies the email")
        .into_inner();
    assert_eq!(user.id, person.id.to_string());
    assert!(user.email_verified);
    // Single use: the same link again is refused.
    assert!(
        app.auth()
            .verify_email(identity::VerifyEmailRequest { token })
            .await
            .is_err()
    );
    // The stream never carried the token, and the sent mail is recorded without the address.
    let sent = app.log.of_type("notifications.email.sent", 1).await;
    assert_eq!(sent.len(), 1);
    let sent = keel_testkit::payload::<keel_proto::notifications::v1::EmailSent>(&sent[0]);
    assert_eq!(sent.template, "verify-email");
    assert_eq!(sent.locale, "en");
    assert_eq!(sent.user_id, person.id.to_string());
}

#[tokio::test]
async fn a_redelivered_event_sends_nothing_twice() {
    let app = TestApp::spawn().await;
    let first = unique_email("first");
    app.register(&first, "First").await;
    app.mail_to(&first).await;
    let requested = app
        .log
        .of_type("identity.user.verification_requested", 1)
        .await;
    // The same envelope again, under another JetStream message id so the broker's duplicate
    // window lets it through: only the consumer's inbox can stop it now.
    let js = async_nats::jetstream::new(async_nats::connect(app.nats.url()).await.unwrap());
    let message = async_nats::jetstream::message::PublishMessage::build()
        .payload(requested[0].encode_to_vec().into())
        .message_id(format!("{}-again", requested[0].event_id));
    js.send_publish("events.identity.user.verification_requested", message)
        .await
        .unwrap()
        .await
        .unwrap();
    // A later event's mail arriving means the consumer got past the copy.
    let second = unique_email("second");
    app.register(&second, "Second").await;
    app.mail_to(&second).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.mails_to(&first).len(), 1, "the copy sent nothing");
}

#[tokio::test]
async fn an_invitation_mails_the_invitee_a_link_that_accepts_it() {
    let app = TestApp::spawn().await;
    let owner = app.verified(&unique_email("owner"), "Olga Owner").await;
    let (tenant, owner_token) = app.create_tenant(&owner, "Acme Widgets").await;
    let invitee = app.verified(&unique_email("ivan"), "Ivan").await;
    app.invite(&owner_token, tenant, &invitee.email, "member")
        .await;
    let mail = app
        .smtp
        .wait_for(|m| {
            m.envelope_to
                .iter()
                .any(|to| to.eq_ignore_ascii_case(&invitee.email))
                && m.subject.as_deref().is_some_and(|s| s.contains("invited"))
        })
        .await;
    assert_eq!(
        mail.subject.as_deref(),
        Some("You are invited to join Acme Widgets")
    );
    let text = mail.text.as_deref().unwrap();
    assert!(
        text.contains("Olga Owner invited you to join Acme Widgets"),
        "{text}"
    );
    assert!(text.contains("expires in 7 days"), "{text}");
    let token = link_token(&mail, "/invitations/accept?token=");
    let membership = app.accept(&invitee.access_token, &token).await;
    assert_eq!(membership.tenant_id, tenant.to_string());
    // Joining is news in the new member's inbox (and by mail).
    let token = app.tenant_token(&invitee, tenant).await;
    let inbox = app.inbox(&token, tenant, 1).await;
    assert_eq!(inbox.notifications[0].title, "You joined Acme Widgets");
    assert_eq!(inbox.notifications[0].event_type, "tenancy.member.added");
    eventually(|| async {
        app.mails_to(&invitee.email)
            .iter()
            .any(|m| m.subject.as_deref() == Some("You joined Acme Widgets"))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_password_reset_mails_a_link_that_resets_the_password() {
    let app = TestApp::spawn().await;
    let email = unique_email("reset");
    app.register(&email, "Rita").await;
    app.mail_to(&email).await;
    app.auth()
        .request_password_reset(identity::RequestPasswordResetRequest {
            email: email.clone(),
        })
        .await
        .unwrap();
    let mail = app
        .smtp
        .wait_for(|m| m.subject.as_deref() == Some("Reset your password"))
        .await;
    assert!(
        mail.envelope_to
            .iter()
            .any(|to| to.eq_ignore_ascii_case(&email))
    );
    let token = link_token(&mail, "/reset-password?token=");
    app.auth()
        .reset_password(identity::ResetPasswordRequest {
            token,
            new_password: "A brand new passphrase 7".into(),
        })
        .await
        .expect("the link resets the password");
    app.auth()
        .login(identity::LoginRequest {
            email,
            password: "A brand new passphrase 7".into(),
        })
        .await
        .expect("the new password works");
}
