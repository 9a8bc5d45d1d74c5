//! A sign-in from a device the user has not used before is announced
//! (`identity.session.new_device_sign_in`); the registration device and known devices are not.

use keel_kernel::UserId;
use keel_proto::identity::v1 as pb;

use crate::support::{PASSWORD, TestApp, claims_of, unique_email};

const EVENT: &str = "identity.session.new_device_sign_in";

/// A request as the gateway forwards it from a client with this User-Agent and address.
fn from_device<T>(message: T, user_agent: &str, ip: &str) -> tonic::Request<T> {
    let mut request = crate::support::from_ip(message, ip);
    request
        .metadata_mut()
        .insert("user-agent", user_agent.parse().unwrap());
    request
}

impl TestApp {
    async fn register_on(&self, email: &str, user_agent: &str, ip: &str) -> UserId {
        let request = pb::RegisterRequest {
            email: email.into(),
            password: PASSWORD.into(),
            display_name: "Device Owner".into(),
        };
        let user = self
            .auth()
            .register(from_device(request, user_agent, ip))
            .await
            .unwrap()
            .into_inner();
        user.id.parse().unwrap()
    }

    async fn login_on(&self, email: &str, user_agent: &str, ip: &str) -> pb::TokenPair {
        let request = pb::LoginRequest {
            email: email.into(),
            password: PASSWORD.into(),
        };
        self.auth()
            .login(from_device(request, user_agent, ip))
            .await
            .unwrap()
            .into_inner()
    }

    async fn new_device_events(&self, user: UserId) -> Vec<pb::NewDeviceSignIn> {
        self.published(EVENT)
            .await
            .iter()
            .map(keel_testkit::payload::<pb::NewDeviceSignIn>)
            .filter(|e| e.user_id == user.to_string())
            .collect()
    }
}

#[tokio::test]
async fn only_a_sign_in_from_a_new_device_is_announced_once() {
    let app = TestApp::spawn().await;
    let email = unique_email("device");
    let user = app.register_on(&email, "Laptop/1.0", "203.0.113.7").await;
    // The registration device, from another address of its network: nothing new.
    app.login_on(&email, "Laptop/1.0", "203.0.113.99").await;
    // A new device.
    let phone = app.login_on(&email, "Phone/2.0", "198.51.100.20").await;
    let event = app
        .published_eventually(EVENT, |e| {
            keel_testkit::payload::<pb::NewDeviceSignIn>(e).user_id == user.to_string()
        })
        .await;
    let sign_in: pb::NewDeviceSignIn = keel_testkit::payload(&event);
    assert_eq!(
        Some(sign_in.session_id.clone()),
        claims_of(&phone.access_token).sid
    );
    assert!(sign_in.user_agent.starts_with("Phone/2.0"), "{sign_in:?}");
    assert_eq!(sign_in.ip_address, "198.51.100.20");
    assert!(sign_in.sign_in_time.is_some());
    // Known from now on; and a login through the registration device again is still known.
    app.login_on(&email, "Phone/2.0", "198.51.100.21").await;
    app.login_on(&email, "Laptop/1.0", "203.0.113.8").await;
    // The same browser on another network is another device.
    app.login_on(&email, "Laptop/1.0", "192.0.2.1").await;
    keel_testkit::eventually(|| async {
        (app.new_device_events(user).await.len() == 2).then_some(())
    })
    .await;
    let events = app.new_device_events(user).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].ip_address, "192.0.2.1");
}

#[tokio::test]
async fn concurrent_sign_ins_from_one_new_device_are_announced_once() {
    let app = TestApp::spawn().await;
    let email = unique_email("burst");
    let user = app.register_on(&email, "Laptop/1.0", "203.0.113.7").await;
    // Four, under the test config's account_threshold (5): every attempt is counted before its
    // password is checked (so concurrent guesses count too), and five at once would lock the pair.
    futures::future::join_all((0..4).map(|_| app.login_on(&email, "Tablet/3.0", "198.51.100.30")))
        .await;
    app.published_eventually(EVENT, |e| {
        keel_testkit::payload::<pb::NewDeviceSignIn>(e).user_id == user.to_string()
    })
    .await;
    // A later event (if the race let two through) would be published by now, with the relay
    // draining in order: a marker login from one more new device comes after it.
    app.login_on(&email, "Marker/1.0", "192.0.2.55").await;
    keel_testkit::eventually(|| async {
        app.new_device_events(user)
            .await
            .iter()
            .any(|e| e.user_agent.starts_with("Marker/1.0"))
            .then_some(())
    })
    .await;
    let tablet = app
        .new_device_events(user)
        .await
        .into_iter()
        .filter(|e| e.user_agent.starts_with("Tablet/3.0"))
        .count();
    assert_eq!(tablet, 1);
}

#[tokio::test]
async fn an_account_with_no_known_device_is_not_warned_on_its_first_sign_in() {
    let app = TestApp::spawn().await;
    let email = unique_email("legacy");
    let user = app.register_on(&email, "Laptop/1.0", "203.0.113.7").await;
    // As for an account registered before devices were recorded.
    let admin = app.admin_pool().await;
    sqlx::query("DELETE FROM identity.known_devices WHERE user_id = $1")
        .bind(user)
        .execute(&admin)
        .await
        .unwrap();
    app.login_on(&email, "Phone/2.0", "198.51.100.20").await;
    app.login_on(&email, "Other/9.0", "192.0.2.9").await;
    let event = app
        .published_eventually(EVENT, |e| {
            keel_testkit::payload::<pb::NewDeviceSignIn>(e).user_id == user.to_string()
        })
        .await;
    let only = keel_testkit::payload::<pb::NewDeviceSignIn>(&event);
    assert!(only.user_agent.starts_with("Other/9.0"), "{only:?}");
    assert_eq!(app.new_device_events(user).await.len(), 1);
}
