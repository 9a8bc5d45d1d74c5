//! Attacks on the credential checks (issue 8): lockout races, locking other people out, and
//! exhausting memory with password hashing. Each test is named after the attack it defeats.

use std::time::Duration;

use futures::future::join_all;
use keel_kernel::{Error, ErrorCode};
use keel_proto::identity::v1 as pb;
use keel_testkit::assert_status;

use crate::support::{PASSWORD, TestApp, bearer, code, from_ip, unique_email};

const ATTACKER_IP: &str = "203.0.113.7";
const USER_IP: &str = "198.51.100.1";
const WRONG: &str = "Wrong password 1";

async fn login_from(
    app: &TestApp,
    email: &str,
    password: &str,
    ip: &str,
) -> Result<pb::TokenPair, tonic::Status> {
    app.auth()
        .login(from_ip(
            pb::LoginRequest {
                email: email.into(),
                password: password.into(),
            },
            ip,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// One sample of a metric from identity's admin `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", app.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn fifty_parallel_wrong_passwords_cannot_get_past_the_lockout() {
    let app = TestApp::spawn().await;
    let email = unique_email("raced");
    app.register(&email).await;
    let threshold = app.settings.lockout.account_threshold as usize;

    let attempts = (0..50).map(|_| login_from(&app, &email, WRONG, ATTACKER_IP));
    let results = join_all(attempts).await;
    let checked = results
        .iter()
        .filter(|result| matches!(result, Err(status) if code(status) == ErrorCode::Authn))
        .count();
    for result in &results {
        let status = result.as_ref().expect_err("every guess is wrong");
        assert!(
            matches!(code(status), ErrorCode::Authn | ErrorCode::RateLimit),
            "{status:?}"
        );
    }
    assert!(
        checked <= threshold,
        "{checked} passwords were checked; the limit is {threshold}"
    );

    assert_status(
        login_from(&app, &email, PASSWORD, ATTACKER_IP).await,
        ErrorCode::RateLimit,
    );
}

#[tokio::test]
async fn an_attacker_failing_from_one_ip_cannot_lock_the_real_user_out() {
    let app = TestApp::spawn().await;
    let email = unique_email("victim");
    app.register(&email).await;
    let threshold = app.settings.lockout.account_threshold;

    for _ in 0..threshold * 2 {
        login_from(&app, &email, WRONG, ATTACKER_IP)
            .await
            .expect_err("wrong");
    }
    login_from(&app, &email, PASSWORD, USER_IP)
        .await
        .expect("the real user, from their own address, still logs in");
    // The lock on (account, attacker's address) holds, even with the right password.
    let locked = assert_status(
        login_from(&app, &email, PASSWORD, ATTACKER_IP).await,
        ErrorCode::RateLimit,
    );
    assert!(
        Error::from_status(&locked).retry_after().is_some(),
        "{locked:?}"
    );
}

#[tokio::test]
async fn an_attacker_rotating_addresses_only_slows_the_account_down() {
    let app = TestApp::spawn_with(|s| {
        s.lockout.account_threshold = 1_000;
        s.lockout.account_delay_threshold = 6;
        s.lockout.base_delay_ms = 1_000;
        s.lockout.max_delay_ms = 1_000;
    })
    .await;
    let email = unique_email("sprayed");
    app.register(&email).await;

    // Six free failures, then one that sets the delay: each from an address of its own.
    for i in 0..7 {
        login_from(&app, &email, WRONG, &format!("203.0.113.{i}"))
            .await
            .expect_err("wrong");
    }
    // Past the account-wide threshold every address waits (a delay, never a lock)...
    let delayed = assert_status(
        login_from(&app, &email, PASSWORD, USER_IP).await,
        ErrorCode::RateLimit,
    );
    let wait = Error::from_status(&delayed)
        .retry_after()
        .expect("retry after");
    assert!(wait <= Duration::from_secs(1), "{wait:?}");
    // ...and after the wait the real user gets in.
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    login_from(&app, &email, PASSWORD, USER_IP)
        .await
        .expect("the delay has passed");
}

#[tokio::test]
async fn a_one_second_wait_is_not_worded_as_one_seconds() {
    let app = TestApp::spawn_with(|s| {
        s.lockout.free_attempts = 1;
        s.lockout.base_delay_ms = 1_000;
        s.lockout.max_delay_ms = 1_000;
    })
    .await;
    let email = unique_email("singular");
    app.register(&email).await;
    for _ in 0..2 {
        app.login_with(&email, WRONG).await.expect_err("wrong");
    }
    let waiting = assert_status(app.login_with(&email, PASSWORD).await, ErrorCode::RateLimit);
    assert!(
        waiting.message().ends_with("try again in 1 second"),
        "{}",
        waiting.message()
    );
}

#[tokio::test]
async fn wrong_current_passwords_count_toward_the_lockout() {
    let app = TestApp::spawn().await;
    let email = unique_email("changer");
    app.register(&email).await;
    let session = app.login(&email).await;
    let threshold = app.settings.lockout.account_threshold;

    let change = |current: &str| {
        let mut auth = app.auth();
        let request = bearer(
            pb::ChangePasswordRequest {
                current_password: current.into(),
                new_password: "Brand new secret 7".into(),
            },
            &session.access_token,
        );
        async move { auth.change_password(request).await }
    };
    for _ in 0..threshold {
        assert_status(change(WRONG).await, ErrorCode::Validation);
    }
    assert_status(change(WRONG).await, ErrorCode::RateLimit);
    // Even the right current password waits out the lock, and so does a login from there.
    assert_status(change(PASSWORD).await, ErrorCode::RateLimit);
    assert_status(app.login_with(&email, PASSWORD).await, ErrorCode::RateLimit);
}

#[tokio::test]
async fn parallel_password_hashing_cannot_exceed_the_memory_budget() {
    let app = TestApp::spawn_with(|s| {
        s.password_hashing.memory_kib = 8 * 1024;
        s.password_hashing.iterations = 2;
        // Two hashes' worth of memory.
        s.password_hashing.memory_budget_mib = 16;
        s.password_hashing.queue_timeout_ms = 10;
    })
    .await;

    let registrations = (0..40).map(|i| {
        let mut auth = app.auth();
        async move {
            auth.register(pb::RegisterRequest {
                email: unique_email(&format!("flood{i}")),
                password: PASSWORD.into(),
                display_name: "Flood".into(),
            })
            .await
        }
    });
    let results = join_all(registrations).await;

    let mut refused = 0;
    for result in &results {
        if let Err(status) = result {
            assert_eq!(code(status), ErrorCode::Unavailable, "{status:?}");
            let retry_after = Error::from_status(status).retry_after();
            assert!(
                retry_after.is_some_and(|wait| wait > Duration::ZERO),
                "{status:?}"
            );
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "40 hashes at once, room for 2: some must wait too long"
    );
    assert!(refused < results.len(), "the first ones get through");

    let most_at_once = metric(&app, "keel_password_hashing_in_flight_max").await;
    assert!(
        (1.0..=2.0).contains(&most_at_once),
        "{most_at_once} hashes ran at once; the budget allows 2"
    );
    assert_eq!(
        metric(&app, "keel_password_hashing_rejected_total").await,
        refused as f64
    );
}
