//! Signing keys: the JWKS on the admin port verifies identity's tokens anywhere in the mesh, and
//! keys rotate: a new key signs, old keys stay published until removed.

use crate::support::{TestApp, bearer, claims_of, header_of, unique_email, write_key};
use keel_identity::settings::SigningKeyFile;
use keel_kernel::ErrorCode;
use keel_kernel::auth::JwtVerifier;
use keel_kernel::config::AuthConfig;
use keel_proto::identity::v1 as pb;
use keel_testkit::assert_status;

/// A verifier as every other service builds it: from identity's JWKS URL.
fn remote_verifier(app: &TestApp) -> JwtVerifier {
    JwtVerifier::new(&AuthConfig {
        jwks_url: format!("http://{}/.well-known/jwks.json", app.admin_addr),
        issuer: crate::support::ISSUER.into(),
        audience: crate::support::AUDIENCE.into(),
        jwks_min_refetch_secs: 0,
        leeway_secs: 5,
    })
    .unwrap()
}

async fn published_kids(app: &TestApp) -> Vec<String> {
    let body: serde_json::Value =
        reqwest::get(format!("http://{}/.well-known/jwks.json", app.admin_addr))
            .await
            .expect("GET jwks")
            .json()
            .await
            .expect("JSON");
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| {
            assert_eq!(key["kty"], "OKP");
            assert_eq!(key["crv"], "Ed25519");
            assert!(key.get("d").is_none(), "never the private half");
            key["kid"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_jwks_on_the_admin_port_verifies_identitys_tokens_in_another_service() {
    let app = TestApp::spawn().await;
    assert_eq!(published_kids(&app).await, vec!["test-key-1"]);
    let grpc = app
        .auth()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .expect("GetJwks")
        .into_inner();
    assert_eq!(grpc.keys.len(), 1);
    assert_eq!(grpc.keys[0].kid, "test-key-1");
    assert_eq!(grpc.keys[0].alg, "EdDSA");
    assert_eq!(grpc.keys[0].key_use, "sig");

    let (user, pair) = app.user(&unique_email("jwks")).await;
    let claims = remote_verifier(&app)
        .verify(&pair.access_token)
        .await
        .expect("verifies");
    assert_eq!(claims.sub, user.to_string());
}

#[tokio::test]
async fn after_rotation_the_new_key_signs_and_tokens_of_the_old_one_still_verify() {
    let mut app = TestApp::spawn().await;
    let email = unique_email("rotate");
    app.register(&email).await;
    let old = app.login(&email).await;
    assert_eq!(header_of(&old.access_token)["kid"], "test-key-1");

    let new_key = app.keys_dir.join("test-key-2.pem");
    write_key(&new_key);
    app.restart_with(|s| {
        s.signing.keys.push(SigningKeyFile {
            kid: "test-key-2".into(),
            private_key_file: new_key.clone(),
        });
        s.signing.active_kid = "test-key-2".into();
    })
    .await;
    let new = app.login(&email).await;
    assert_eq!(header_of(&new.access_token)["kid"], "test-key-2");
    assert_eq!(
        published_kids(&app).await,
        vec!["test-key-2", "test-key-1"],
        "the active key first, the old one kept"
    );
    let verifier = remote_verifier(&app);
    verifier
        .verify(&old.access_token)
        .await
        .expect("an old token verifies");
    verifier
        .verify(&new.access_token)
        .await
        .expect("a new token verifies");
    app.users()
        .get_me(bearer(pb::GetMeRequest {}, &old.access_token))
        .await
        .expect("identity still accepts the old key's tokens");

    // Once the old key is retired, its tokens stop working.
    app.restart_with(|s| s.signing.keys.retain(|k| k.kid == "test-key-2"))
        .await;
    assert_eq!(published_kids(&app).await, vec!["test-key-2"]);
    // retired key
    assert_status(
        app.users()
            .get_me(bearer(pb::GetMeRequest {}, &old.access_token))
            .await,
        ErrorCode::Authn,
    );
    assert_eq!(
        claims_of(&new.access_token).sub,
        claims_of(&old.access_token).sub
    );
}

#[tokio::test]
async fn a_missing_key_file_stops_start_up_naming_the_config_key() {
    let db = keel_testkit::TestDatabase::create().await;
    let db_config = db.provision("identity").await;
    let dir = std::env::temp_dir().join(format!("keel-missing-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut settings = crate::support::test_settings(&dir);
    settings.signing.keys[0].private_key_file = dir.join("nope.pem");
    let err = keel_identity::app::build(crate::support::config(
        db_config,
        &keel_testkit::stack::shared_nats_url(),
        settings,
    ))
    .await
    .err()
    .expect("start-up fails");
    assert!(
        format!("{err:?}").contains("app.signing.keys[0].private_key_file"),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
