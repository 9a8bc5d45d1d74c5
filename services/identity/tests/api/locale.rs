//! A user's language: defaulted at registration from Accept-Language, changed with UpdateMe,
//! validated as BCP 47, and carried by the events a notifier writes from.

use keel_kernel::{Error, ErrorCode, UserId};
use keel_proto::identity::v1 as pb;
use keel_testkit::assert_status;

use crate::support::{PASSWORD, TestApp, bearer, unique_email};

fn register(email: &str) -> pb::RegisterRequest {
    pb::RegisterRequest {
        email: email.into(),
        password: PASSWORD.into(),
        display_name: "Polyglot".into(),
    }
}

fn with_language<T>(mut request: tonic::Request<T>, accept_language: &str) -> tonic::Request<T> {
    request
        .metadata_mut()
        .insert("accept-language", accept_language.parse().unwrap());
    request
}

fn update(display_name: &str, locale: &str, paths: &[&str]) -> pb::UpdateMeRequest {
    pb::UpdateMeRequest {
        user: Some(pb::User {
            display_name: display_name.into(),
            locale: locale.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    }
}

#[tokio::test]
async fn registration_takes_the_locale_from_accept_language_and_events_carry_it() {
    let app = TestApp::spawn().await;
    let email = unique_email("ko");
    let user = app
        .auth()
        .register(with_language(
            tonic::Request::new(register(&email)),
            "ko-kr, en;q=0.7",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.locale, "ko-KR");
    let id: UserId = user.id.parse().unwrap();
    let registered = app
        .published_eventually("identity.user.registered", |e| {
            e.aggregate_id == id.to_string()
        })
        .await;
    assert_eq!(
        keel_testkit::payload::<pb::UserRegistered>(&registered).locale,
        "ko-KR"
    );
    let verification = app
        .published_eventually("identity.user.verification_requested", |e| {
            e.aggregate_id == id.to_string()
        })
        .await;
    let verification: pb::UserVerificationRequested = keel_testkit::payload(&verification);
    assert_eq!(verification.locale, "ko-KR");
    assert_eq!(verification.request_locale, "ko-KR");

    // No header, no language: the notifier falls back to the tenant's, then the request's.
    let plain = app
        .auth()
        .register(register(&unique_email("plain")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plain.locale, "");
    // An unusable header is ignored rather than refusing the registration.
    let odd = app
        .auth()
        .register(with_language(
            tonic::Request::new(register(&unique_email("odd"))),
            "*, !!!",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(odd.locale, "");
}

#[tokio::test]
async fn update_me_sets_clears_and_validates_the_locale() {
    let app = TestApp::spawn().await;
    let email = unique_email("zh");
    let (_, pair) = app.user(&email).await;
    let token = pair.access_token;

    let changed = app
        .users()
        .update_me(bearer(update("ignored", "zh-hant-tw", &["locale"]), &token))
        .await
        .expect("set the locale")
        .into_inner();
    assert_eq!(changed.locale, "zh-Hant-TW");
    assert_eq!(
        changed.display_name, "Test User",
        "not in the mask: unchanged"
    );

    let bad = assert_status(
        app.users()
            .update_me(bearer(update("", "not a language", &["locale"]), &token))
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(
        Error::from_status(&bad).violations()[0].field,
        "user.locale"
    );

    // An empty mask updates both fields.
    let both = app
        .users()
        .update_me(bearer(update("Renamed", "ar", &[]), &token))
        .await
        .expect("both")
        .into_inner();
    assert_eq!(
        (both.display_name.as_str(), both.locale.as_str()),
        ("Renamed", "ar")
    );
    let cleared = app
        .users()
        .update_me(bearer(update("", "", &["locale"]), &token))
        .await
        .expect("clear")
        .into_inner();
    assert_eq!(cleared.locale, "");
    assert_eq!(cleared.display_name, "Renamed");

    // The reset mail is written in the user's language, or the requester's.
    app.users()
        .update_me(bearer(update("", "en", &["locale"]), &token))
        .await
        .unwrap();
    app.auth()
        .request_password_reset(with_language(
            tonic::Request::new(pb::RequestPasswordResetRequest {
                email: email.clone(),
            }),
            "ar",
        ))
        .await
        .unwrap();
    let event = app
        .published_eventually("identity.user.password_reset_requested", |_| true)
        .await;
    let requested: pb::PasswordResetRequested = keel_testkit::payload(&event);
    assert_eq!(requested.locale, "en");
    assert_eq!(requested.request_locale, "ar");
}
