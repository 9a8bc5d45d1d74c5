//! Service credentials: a service of the mesh obtains its own token from identity with its client
//! id and secret (`IssueServiceToken`), through the kernel's `ServiceTokens`, and calls with it.

use std::path::Path;
use std::time::Duration;

use keel_identity::settings::{IdentitySettings, ServiceClientSettings};
use keel_kernel::auth::PrincipalKind;
use keel_kernel::config::Config;
use keel_kernel::service_client::ServiceTokens;
use keel_kernel::{Error, ErrorCode};
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::auth_service_client::AuthServiceClient;
use keel_testkit::assert_status;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::support::{TestApp, claims_of, from_ip, unique_email};

const NOTIFIER_SECRET: &str = "notifier-test-secret-7f3a9c1e55b2";
const READER_SECRET: &str = "reader-test-secret-0a9e2d4c61f8";

fn client(id: &str, secret: &str, permissions: &[&str]) -> ServiceClientSettings {
    ServiceClientSettings {
        client_id: id.into(),
        secret_sha256: Some(hex::encode(Sha256::digest(secret.as_bytes()))),
        secret_file: None,
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn with_clients(settings: &mut IdentitySettings) {
    settings.service_clients = vec![
        client(
            "notifications",
            NOTIFIER_SECRET,
            &["identity.verification.issue"],
        ),
        client("reader", READER_SECRET, &["identity.user.read"]),
    ];
}

fn tokens(app: &TestApp, id: &str, secret: &str, permissions: &[&str]) -> ServiceTokens {
    ServiceTokens::with_channel(
        app.channel.clone(),
        id,
        SecretString::from(secret.to_owned()),
        permissions.iter().map(|p| (*p).to_owned()).collect(),
    )
}

fn ask(id: &str, secret: &str, permissions: &[&str]) -> pb::IssueServiceTokenRequest {
    pb::IssueServiceTokenRequest {
        client_id: id.into(),
        client_secret: secret.into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
    }
}

#[tokio::test]
async fn a_service_gets_a_token_and_issues_a_verification_token_with_it() {
    let app = TestApp::spawn_with(with_clients).await;
    let email = unique_email("svc");
    let user = app.register(&email).await;
    let verification_id = app.verification_id(user).await;

    let notifier = tokens(&app, "notifications", NOTIFIER_SECRET, &[]);
    let token = notifier.token().await.expect("a service token");
    let claims = claims_of(&token);
    assert_eq!(claims.kind, PrincipalKind::Service);
    assert_eq!(claims.sub, "notifications");
    assert_eq!(claims.tid, None);
    assert_eq!(claims.perms, vec!["identity.verification.issue".to_owned()]);
    assert!(claims.exp - claims.iat <= 300, "short-lived");

    let request = notifier
        .authorized(pb::IssueVerificationTokenRequest { verification_id })
        .await
        .unwrap();
    let issued = app
        .auth()
        .issue_verification_token(request)
        .await
        .expect("the service may issue a verification token")
        .into_inner();
    assert_eq!(issued.email, email);
    let verified = app
        .auth()
        .verify_email(pb::VerifyEmailRequest {
            token: issued.token,
        })
        .await
        .expect("the issued token verifies the email")
        .into_inner();
    assert!(verified.email_verified);

    // The synchronous interceptor presents the same cached token.
    let mut with_interceptor =
        AuthServiceClient::with_interceptor(app.channel.clone(), notifier.interceptor());
    let again = app.verification_id(user).await;
    // Verified already: the pending verification is used up, so NOT_FOUND, not AUTHN/AUTHZ.
    assert_status(
        with_interceptor
            .issue_verification_token(pb::IssueVerificationTokenRequest {
                verification_id: again,
            })
            .await,
        ErrorCode::NotFound,
    );
}

#[tokio::test]
async fn a_wrong_secret_or_an_unknown_client_is_unauthenticated_alike() {
    let app = TestApp::spawn_with(with_clients).await;
    let wrong = assert_status(
        app.auth()
            .issue_service_token(ask("notifications", "not-the-secret", &[]))
            .await,
        ErrorCode::Authn,
    );
    let unknown = assert_status(
        app.auth()
            .issue_service_token(ask("billing", NOTIFIER_SECRET, &[]))
            .await,
        ErrorCode::Authn,
    );
    assert_eq!(wrong.message(), unknown.message(), "no hint which is wrong");
    // Another client's secret is not this client's.
    assert_status(
        app.auth()
            .issue_service_token(ask("notifications", READER_SECRET, &[]))
            .await,
        ErrorCode::Authn,
    );
    let missing = assert_status(
        app.auth().issue_service_token(ask("", "", &[])).await,
        ErrorCode::Validation,
    );
    let fields: Vec<String> = Error::from_status(&missing)
        .violations()
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, vec!["client_id", "client_secret"]);

    // Through the kernel: a refused client is this service's own fault, INTERNAL, never a token.
    let err = tokens(&app, "notifications", "not-the-secret", &[])
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Internal, "{err:?}");
}

#[tokio::test]
async fn guessing_a_client_secret_is_throttled_like_a_password() {
    let app = TestApp::spawn_with(with_clients).await;
    // The test lockout locks an (account, address) pair after 5 failures.
    for _ in 0..5 {
        assert_status(
            app.auth()
                .issue_service_token(from_ip(ask("notifications", "guess", &[]), "198.51.100.7"))
                .await,
            ErrorCode::Authn,
        );
    }
    assert_status(
        app.auth()
            .issue_service_token(from_ip(
                ask("notifications", NOTIFIER_SECRET, &[]),
                "198.51.100.7",
            ))
            .await,
        ErrorCode::RateLimit,
    );
    // The real service, elsewhere, is not locked out by the guesser.
    app.auth()
        .issue_service_token(from_ip(
            ask("notifications", NOTIFIER_SECRET, &[]),
            "198.51.100.8",
        ))
        .await
        .expect("another address still gets its token");
}

#[tokio::test]
async fn a_client_cannot_get_or_use_permissions_it_was_not_configured_with() {
    let app = TestApp::spawn_with(with_clients).await;
    let user = app.register(&unique_email("perm")).await;
    let verification_id = app.verification_id(user).await;

    // Asking for more than configured is refused outright.
    assert_status(
        app.auth()
            .issue_service_token(ask(
                "notifications",
                NOTIFIER_SECRET,
                &["identity.verification.issue", "identity.user.read"],
            ))
            .await,
        ErrorCode::Authz,
    );
    let err = tokens(
        &app,
        "reader",
        READER_SECRET,
        &["identity.verification.issue"],
    )
    .token()
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Internal);

    // A narrower request gets exactly what it asked for.
    let narrow = app
        .auth()
        .issue_service_token(ask("reader", READER_SECRET, &["identity.user.read"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(narrow.permissions, vec!["identity.user.read".to_owned()]);
    assert_eq!(narrow.token_type, "Bearer");

    // The reader's token cannot issue verification tokens; the notifier's cannot read users.
    let reader = tokens(&app, "reader", READER_SECRET, &[]);
    assert_status(
        app.auth()
            .issue_verification_token(
                reader
                    .authorized(pb::IssueVerificationTokenRequest {
                        verification_id: verification_id.clone(),
                    })
                    .await
                    .unwrap(),
            )
            .await,
        ErrorCode::Authz,
    );
    let found = app
        .users()
        .get_user(
            reader
                .authorized(pb::GetUserRequest {
                    user_id: user.to_string(),
                })
                .await
                .unwrap(),
        )
        .await
        .expect("identity.user.read reads any user")
        .into_inner();
    assert_eq!(found.id, user.to_string());
    let notifier = tokens(&app, "notifications", NOTIFIER_SECRET, &[]);
    assert_status(
        app.users()
            .get_user(
                notifier
                    .authorized(pb::GetUserRequest {
                        user_id: user.to_string(),
                    })
                    .await
                    .unwrap(),
            )
            .await,
        ErrorCode::NotFound,
    );
}

#[tokio::test]
async fn the_token_is_cached_fetched_once_for_concurrent_callers_and_renewed_before_expiry() {
    let app = TestApp::spawn_with(|settings| {
        with_clients(settings);
        settings.tokens.service_token_ttl_secs = 4;
    })
    .await;
    let notifier = tokens(&app, "notifications", NOTIFIER_SECRET, &[]);

    // 16 callers at once on an empty cache: one fetch, one token (each token has its own jti).
    let all = futures::future::join_all((0..16).map(|_| {
        let notifier = notifier.clone();
        async move { notifier.token().await.unwrap() }
    }))
    .await;
    assert!(all.iter().all(|token| token == &all[0]), "one fetch");
    assert_eq!(notifier.token().await.unwrap(), all[0], "cached");

    // Renewed at 3/4 of its 4 s life, before it expires.
    tokio::time::sleep(Duration::from_millis(3_300)).await;
    let renewed = notifier.token().await.unwrap();
    assert_ne!(renewed, all[0], "renewed after 3/4 of the lifetime");
    let first = claims_of(&all[0]);
    assert!(
        chrono::Utc::now().timestamp() <= first.exp,
        "the renewal came before the old token expired"
    );
    let user = app.register(&unique_email("renew")).await;
    let verification_id = app.verification_id(user).await;
    app.auth()
        .issue_verification_token(
            notifier
                .authorized(pb::IssueVerificationTokenRequest { verification_id })
                .await
                .unwrap(),
        )
        .await
        .expect("the renewed token works");

    // After invalidate (a callee refused the token), the next call fetches a new one.
    notifier.invalidate();
    assert_ne!(notifier.token().await.unwrap(), renewed);
}

#[test]
fn a_service_client_with_an_unknown_permission_or_no_secret_names_the_key_at_fault() {
    let yaml = |client: &str| {
        format!(
            r#"
service: identity
database: {{ url: "postgres://identity:pw@127.0.0.1:5432/keel", schema: identity }}
nats: {{ url: "nats://127.0.0.1:4222" }}
auth: {{ issuer: keel, audience: keel }}
app:
  signing:
    active_kid: dev-1
    keys: [{{ kid: dev-1, private_key_file: /dev/null }}]
  service_clients:
    - {client}
"#
        )
    };
    let load = |client: &str| {
        Config::<IdentitySettings>::from_yaml(
            &yaml(client),
            Path::new("t.yaml"),
            std::iter::empty(),
        )
        .expect_err("invalid")
        .to_string()
    };
    let digest = "0".repeat(64);
    let err = load(&format!(
        "{{ client_id: notifications, secret_sha256: '{digest}', permissions: [identity.everything.do] }}"
    ));
    assert!(
        err.contains("app.service_clients[0].permissions[0]"),
        "{err}"
    );
    let err = load("{ client_id: notifications, permissions: [identity.user.read] }");
    assert!(
        err.contains("app.service_clients[0].secret_sha256"),
        "{err}"
    );
    let err = load(&format!(
        "{{ client_id: Bad_Id, secret_sha256: '{digest}', permissions: [identity.user.read] }}"
    ));
    assert!(err.contains("app.service_clients[0].client_id"), "{err}");
}
