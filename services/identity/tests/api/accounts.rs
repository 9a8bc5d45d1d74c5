//! Accounts: registration, the password policy, login, brute-force lockout, email verification
//! and password changes.

use crate::support::{
    PASSWORD, TestApp, bearer, claims_of, code, eventually, from_ip, header_of, unique_email,
};
use keel_kernel::ErrorCode;
use keel_kernel::auth::PrincipalKind;
use keel_proto::identity::v1 as pb;
use keel_testkit::{assert_status, payload};

#[tokio::test]
async fn registering_returns_the_user_and_a_taken_email_is_refused_in_any_case() {
    let app = TestApp::spawn().await;
    let email = unique_email("Ada");
    let user = app
        .auth()
        .register(pb::RegisterRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            display_name: "Ada Lovelace".into(),
        })
        .await
        .expect("register")
        .into_inner();
    assert_eq!(user.email, email);
    assert_eq!(user.display_name, "Ada Lovelace");
    assert!(!user.email_verified);

    // the email is taken
    let again = assert_status(
        app.auth()
            .register(pb::RegisterRequest {
                email: email.to_uppercase(),
                password: PASSWORD.into(),
                display_name: "Impostor".into(),
            })
            .await,
        ErrorCode::Conflict,
    );
    assert!(again.message().contains("email"), "{}", again.message());
    // Said in domain words: the schema's constraint name never reaches a client.
    assert!(
        !again.message().contains("users_email_key"),
        "{}",
        again.message()
    );
}

#[tokio::test]
async fn a_weak_password_is_refused_with_each_missing_rule_named() {
    let app = TestApp::spawn().await;
    let status = app
        .auth()
        .register(pb::RegisterRequest {
            email: "not-an-email".into(),
            password: "short".into(),
            display_name: String::new(),
        })
        .await
        .expect_err("invalid");
    let error = keel_kernel::Error::from_status(&status);
    assert_eq!(error.code(), ErrorCode::Validation);
    let password_rules: Vec<&str> = error
        .violations()
        .iter()
        .filter(|v| v.field == "password")
        .map(|v| v.description.as_str())
        .collect();
    assert!(
        password_rules.contains(&"must be at least 10 characters long"),
        "{password_rules:?}"
    );
    assert!(
        password_rules.contains(&"must contain an uppercase letter"),
        "{password_rules:?}"
    );
    assert!(
        password_rules.contains(&"must contain a digit"),
        "{password_rules:?}"
    );
    assert!(error.violations().iter().any(|v| v.field == "email"));
    assert!(error.violations().iter().any(|v| v.field == "display_name"));
}

#[tokio::test]
async fn the_password_hash_is_argon2id_and_the_password_is_stored_nowhere() {
    let app = TestApp::spawn().await;
    let user = app.register(&unique_email("hash")).await;
    let admin = app.admin_pool().await;
    let (hash,): (String,) =
        sqlx::query_as("SELECT password_hash FROM identity.credentials WHERE user_id = $1")
            .bind(user.as_uuid())
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test]
async fn login_returns_a_short_lived_signed_token_and_an_opaque_refresh_token() {
    let app = TestApp::spawn().await;
    let email = unique_email("login");
    let user = app.register(&email).await;
    let pair = app.login(&email.to_uppercase()).await;
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.expires_in, 900);
    assert!(pair.tenant_id.is_empty());
    assert!(pair.refresh_token.starts_with("keel_rt_"));

    let header = header_of(&pair.access_token);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], "test-key-1");
    let claims = claims_of(&pair.access_token);
    assert_eq!(claims.sub, user.to_string());
    assert_eq!(claims.kind, PrincipalKind::User);
    assert_eq!(claims.tid, None);
    assert!(claims.perms.is_empty(), "an unscoped token grants nothing");
    assert!(claims.sid.is_some());
    assert_eq!(claims.iss, crate::support::ISSUER);
    assert_eq!(claims.aud, crate::support::AUDIENCE);
    assert_eq!(claims.exp - claims.iat, 900);
    assert!(!claims.jti.is_empty());

    let me = app
        .users()
        .get_me(bearer(pb::GetMeRequest {}, &pair.access_token))
        .await
        .expect("the token is accepted")
        .into_inner();
    assert_eq!(me.id, user.to_string());

    // Only the hash of the refresh token is stored.
    let admin = app.admin_pool().await;
    let (stored,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM identity.refresh_tokens WHERE token_hash = sha256($1::bytea)",
    )
    .bind(pair.refresh_token.as_bytes())
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(stored, 1);
    let (plain,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM identity.refresh_tokens WHERE token_hash = $1::bytea")
            .bind(pair.refresh_token.as_bytes())
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(plain, 0);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let email = unique_email("known");
    app.register(&email).await;
    let wrong = app
        .login_with(&email, "Wrong password 1")
        .await
        .expect_err("wrong password");
    let unknown = app
        .login_with(&unique_email("nobody"), PASSWORD)
        .await
        .expect_err("unknown email");
    assert_eq!(code(&wrong), ErrorCode::Authn);
    assert_eq!(wrong.code(), unknown.code());
    assert_eq!(wrong.message(), unknown.message());
}

#[tokio::test]
async fn repeated_failures_lock_an_account_whatever_the_password_and_whether_or_not_it_exists() {
    let app = TestApp::spawn().await;
    let email = unique_email("target");
    app.register(&email).await;
    let ghost = unique_email("ghost");
    for _ in 0..5 {
        // wrong
        assert_status(
            app.login_with(&email, "Wrong password 1").await,
            ErrorCode::Authn,
        );
        // unknown
        assert_status(
            app.login_with(&ghost, "Wrong password 1").await,
            ErrorCode::Authn,
        );
    }
    let locked = app
        .login_with(&email, PASSWORD)
        .await
        .expect_err("locked, even with the right password");
    let ghost_locked = app
        .login_with(&ghost, PASSWORD)
        .await
        .expect_err("locked the same way");
    assert_eq!(locked.code(), tonic::Code::ResourceExhausted);
    assert_eq!(code(&locked), ErrorCode::RateLimit);
    assert!(
        locked
            .message()
            .contains("too many failed sign-in attempts"),
        "{}",
        locked.message()
    );
    assert_eq!(ghost_locked.code(), locked.code());
    assert_eq!(ghost_locked.message(), locked.message());

    // Another account is unaffected.
    let other = unique_email("other");
    app.register(&other).await;
    app.login(&other).await;
}

#[tokio::test]
async fn failures_from_one_ip_lock_that_ip_out_across_accounts() {
    let app = TestApp::spawn_with(|s| s.lockout.ip_threshold = 4).await;
    let victim = unique_email("victim");
    app.register(&victim).await;
    for i in 0..4 {
        // wrong
        assert_status(
            app.auth()
                .login(from_ip(
                    pb::LoginRequest {
                        email: unique_email(&format!("spray{i}")),
                        password: "Wrong password 1".into(),
                    },
                    "203.0.113.7",
                ))
                .await,
            ErrorCode::Authn,
        );
    }
    // the IP is locked out
    assert_status(
        app.auth()
            .login(from_ip(
                pb::LoginRequest {
                    email: victim.clone(),
                    password: PASSWORD.into(),
                },
                "203.0.113.7",
            ))
            .await,
        ErrorCode::RateLimit,
    );
    app.auth()
        .login(from_ip(
            pb::LoginRequest {
                email: victim,
                password: PASSWORD.into(),
            },
            "198.51.100.1",
        ))
        .await
        .expect("another IP logs in");
}

#[tokio::test]
async fn failures_past_the_free_attempts_are_delayed_more_each_time() {
    let app = TestApp::spawn_with(|s| {
        s.lockout.free_attempts = 1;
        s.lockout.base_delay_ms = 2_000;
        s.lockout.max_delay_ms = 10_000;
    })
    .await;
    let email = unique_email("slow");
    app.register(&email).await;
    app.login_with(&email, "Wrong password 1")
        .await
        .expect_err("first failure, no delay");
    app.login_with(&email, "Wrong password 1")
        .await
        .expect_err("second failure, sets a delay");
    // inside the delay
    let waiting = assert_status(app.login_with(&email, PASSWORD).await, ErrorCode::RateLimit);
    assert!(
        waiting.message().contains("try again in 2 seconds"),
        "{}",
        waiting.message()
    );
}

#[tokio::test]
async fn email_verification_tokens_are_delivered_by_event_and_single_use() {
    let app = TestApp::spawn().await;
    let email = unique_email("verify");
    let user = app.register(&email).await;
    let event = app
        .published_eventually("identity.user.verification_requested", |e| {
            e.aggregate_id == user.to_string()
        })
        .await;
    let requested = payload::<pb::UserVerificationRequested>(&event);
    assert_eq!(requested.email, email);
    assert!(requested.expire_time.is_some());
    let token = app.verification_token(user).await;

    let verified = app
        .auth()
        .verify_email(pb::VerifyEmailRequest {
            token: token.clone(),
        })
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.email_verified);
    // single use
    assert_status(
        app.auth()
            .verify_email(pb::VerifyEmailRequest { token })
            .await,
        ErrorCode::Validation,
    );

    // Asking again once verified is refused.
    let pair = app.login(&email).await;
    let refused = app
        .auth()
        .request_email_verification(bearer(
            pb::RequestEmailVerificationRequest {},
            &pair.access_token,
        ))
        .await;
    // A refusal because of the account's state, not the request's shape.
    assert_status(refused, ErrorCode::FailedPrecondition);
    let registered = app.published("identity.user.registered").await;
    assert_eq!(registered.len(), 1);
    let payload = payload::<pb::UserRegistered>(&registered[0]);
    assert_eq!(payload.user_id, user.to_string());
}

#[tokio::test]
async fn a_new_verification_request_invalidates_the_earlier_token() {
    let app = TestApp::spawn().await;
    let email = unique_email("reverify");
    let (user, pair) = app.user(&email).await;
    app.auth()
        .request_email_verification(bearer(
            pb::RequestEmailVerificationRequest {},
            &pair.access_token,
        ))
        .await
        .expect("request again");
    let requests = |count: usize| {
        let app = &app;
        async move {
            eventually(|| async {
                let events = app.published("identity.user.verification_requested").await;
                let seen = events
                    .iter()
                    .filter(|e| e.aggregate_id == user.to_string())
                    .count();
                (seen == count).then_some(())
            })
            .await
        }
    };
    requests(2).await;
    let first = app.verification_token(user).await;
    app.auth()
        .request_email_verification(bearer(
            pb::RequestEmailVerificationRequest {},
            &pair.access_token,
        ))
        .await
        .expect("request once more");
    requests(3).await;
    let tokens = [first, app.verification_token(user).await];
    // superseded
    assert_status(
        app.auth()
            .verify_email(pb::VerifyEmailRequest {
                token: tokens[0].clone(),
            })
            .await,
        ErrorCode::Validation,
    );
    app.auth()
        .verify_email(pb::VerifyEmailRequest {
            token: tokens[1].clone(),
        })
        .await
        .expect("the newest token verifies");
}

#[tokio::test]
async fn changing_the_password_revokes_the_other_sessions_but_not_this_one() {
    let app = TestApp::spawn().await;
    let email = unique_email("change");
    app.register(&email).await;
    let laptop = app.login(&email).await;
    let phone = app.login(&email).await;

    // wrong current password
    assert_status(
        app.auth()
            .change_password(bearer(
                pb::ChangePasswordRequest {
                    current_password: "Not the password 1".into(),
                    new_password: "Brand new secret 7".into(),
                },
                &laptop.access_token,
            ))
            .await,
        ErrorCode::Validation,
    );
    // weak new password
    assert_status(
        app.auth()
            .change_password(bearer(
                pb::ChangePasswordRequest {
                    current_password: PASSWORD.into(),
                    new_password: "weak".into(),
                },
                &laptop.access_token,
            ))
            .await,
        ErrorCode::Validation,
    );

    app.auth()
        .change_password(bearer(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "Brand new secret 7".into(),
            },
            &laptop.access_token,
        ))
        .await
        .expect("change");
    // the other session is revoked
    assert_status(app.refresh(&phone.refresh_token).await, ErrorCode::Authn);
    app.refresh(&laptop.refresh_token)
        .await
        .expect("this session goes on");
    app.login_with(&email, PASSWORD)
        .await
        .expect_err("the old password no longer works");
    app.login_with(&email, "Brand new secret 7")
        .await
        .expect("the new one does");
}

#[tokio::test]
async fn the_profile_can_be_read_and_renamed_but_nothing_else_changed() {
    let app = TestApp::spawn().await;
    let (_, pair) = app.user(&unique_email("profile")).await;
    let renamed = app
        .users()
        .update_me(bearer(
            pb::UpdateMeRequest {
                user: Some(pb::User {
                    display_name: "New Name".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into()],
                }),
            },
            &pair.access_token,
        ))
        .await
        .expect("rename")
        .into_inner();
    assert_eq!(renamed.display_name, "New Name");
    // email is not updatable
    assert_status(
        app.users()
            .update_me(bearer(
                pb::UpdateMeRequest {
                    user: Some(pb::User {
                        email: "evil@example.com".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["email".into()],
                    }),
                },
                &pair.access_token,
            ))
            .await,
        ErrorCode::Validation,
    );
}

#[tokio::test]
async fn a_user_can_be_looked_up_by_themselves_and_by_members_of_a_shared_tenant_only() {
    let app = TestApp::spawn().await;
    let (owner, tenant, owner_scoped) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let (member, member_pair) = app.user(&unique_email("member")).await;
    let (stranger, stranger_pair) = app.user(&unique_email("stranger")).await;
    app.member_added(tenant, member, "viewer").await;
    let member_scoped = app
        .switch_eventually(&member_pair.access_token, tenant)
        .await;

    let get = |user: keel_kernel::UserId, token: String| {
        let mut users = app.users();
        async move {
            users
                .get_user(bearer(
                    pb::GetUserRequest {
                        user_id: user.to_string(),
                    },
                    &token,
                ))
                .await
                .map(tonic::Response::into_inner)
        }
    };
    assert_eq!(
        get(stranger, stranger_pair.access_token.clone())
            .await
            .expect("self")
            .id,
        stranger.to_string()
    );
    assert_eq!(
        get(owner, member_scoped.access_token.clone())
            .await
            .expect("a fellow member")
            .id,
        owner.to_string()
    );
    assert_eq!(
        get(member, owner_scoped.access_token.clone())
            .await
            .expect("a fellow member")
            .id,
        member.to_string()
    );
    // not a member
    assert_status(
        get(stranger, owner_scoped.access_token.clone()).await,
        ErrorCode::NotFound,
    );
    // no shared tenant
    assert_status(
        get(owner, stranger_pair.access_token).await,
        ErrorCode::NotFound,
    );
}

#[tokio::test]
async fn a_login_email_with_a_nul_character_is_a_validation_error_naming_the_field() {
    let app = TestApp::spawn().await;
    // control characters are refused
    let err = assert_status(
        app.login_with("nul\u{0}@example.com", PASSWORD).await,
        ErrorCode::Validation,
    );
    assert!(err.message().contains("email"), "{}", err.message());
}
