//! The configuration `make run` uses is valid for identity.

use std::path::Path;

use keel_identity::settings::IdentitySettings;
use keel_kernel::config::Config;

#[test]
fn the_make_run_config_loads_and_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/identity.yaml");
    let config = Config::<IdentitySettings>::load(&path).expect("config/identity.yaml is valid");
    assert_eq!(config.service, "identity");
    assert_eq!(config.grpc.listen.port(), 50051);
    assert_eq!(config.admin.listen.port(), 9091);
    assert_eq!(config.app.signing.active_kid, "dev-1");
    assert!(config.auth.jwks_url.is_empty());
}

#[test]
fn a_config_whose_active_key_is_not_listed_names_the_key_at_fault() {
    let yaml = r#"
service: identity
database: { url: "postgres://identity:pw@127.0.0.1:5432/keel", schema: identity }
nats: { url: "nats://127.0.0.1:4222" }
auth: { issuer: keel, audience: keel }
app:
  signing:
    active_kid: missing
    keys: [{ kid: dev-1, private_key_file: /dev/null }]
"#;
    let err =
        Config::<IdentitySettings>::from_yaml(yaml, Path::new("test.yaml"), std::iter::empty())
            .expect_err("invalid");
    assert!(err.to_string().contains("app.signing.active_kid"), "{err}");
}
