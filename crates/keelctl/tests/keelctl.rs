//! keelctl against the real services: tenancy started in-process on port 0 against its own
//! database and NATS, tokens from the test issuer that stands in for identity (real Ed25519 JWTs
//! over a real JWKS endpoint), and the `keelctl` binary run as a process, as an operator runs it.

use std::time::Duration;

use keel_kernel::UserId;
use keel_kernel::app::Running;
use keel_kernel::auth::roles;
use keel_proto::tenancy::v1 as pb;
use keel_proto::tenancy::v1::tenant_service_client::TenantServiceClient;
use keel_testkit::Bearer;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use serde_json::Value;
use tonic::transport::Channel;

struct Mesh {
    issuer: TestIssuer,
    nats: TestNats,
    db: TestDatabase,
    channel: Channel,
    running: Option<Running>,
}

/// What a keelctl run printed, and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "keelctl failed: {}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.stdout))
    }
}

impl Mesh {
    async fn start() -> Mesh {
        let issuer = TestIssuer::start().await;
        let nats = TestNats::start().await;
        let db = TestDatabase::create().await;
        let db_config = db.provision("tenancy").await;
        let mut config = stack::config_with(
            "tenancy",
            db_config,
            stack::nats_config(&nats.url()),
            keel_tenancy::Settings::default(),
        );
        config.auth = issuer.auth_config();
        let running = keel_tenancy::build(config).await.expect("tenancy starts");
        let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to tenancy");
        Mesh {
            issuer,
            nats,
            db,
            channel,
            running: Some(running),
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    fn admin_token(&self) -> String {
        self.issuer.token(
            TokenSpec::any_user()
                .role(roles::PLATFORM_ADMIN)
                .perms(roles::PLATFORM_PERMISSIONS.iter().copied()),
        )
    }

    /// keelctl pointed at this mesh's tenancy, with `token` (none: no token at all).
    async fn keelctl(&self, token: Option<&str>, args: &[&str]) -> Run {
        let running = self.running();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_keelctl"));
        command
            .env_remove("KEELCTL_TOKEN")
            .env_remove("KEELCTL_ADMIN")
            .arg("--tenancy-grpc")
            .arg(format!("http://{}", running.grpc_addr))
            .arg("--admin")
            .arg(format!("tenancy=http://{}", running.admin_addr))
            .args(args);
        if let Some(token) = token {
            command.env("KEELCTL_TOKEN", token);
        }
        let output = tokio::time::timeout(Duration::from_secs(60), command.output())
            .await
            .expect("keelctl finishes")
            .expect("keelctl runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// A tenant created by a fresh user: pending approval, as tenancy's default settings say.
    async fn pending_tenant(&self, slug: &str) -> pb::Tenant {
        let user = self.issuer.token(TokenSpec::user(UserId::new()));
        TenantServiceClient::with_interceptor(self.channel.clone(), Bearer::token(&user))
            .create_tenant(pb::CreateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: format!("Tenant {slug}"),
                    slug: slug.into(),
                    ..Default::default()
                }),
            })
            .await
            .expect("create tenant")
            .into_inner()
    }

    async fn dead_letter(&self, consumer: &str) -> i64 {
        let pool = self.db.admin_pool().await;
        sqlx::query_scalar(
            "INSERT INTO tenancy.dead_letters (consumer, event_id, subject, envelope, error, deliveries) \
             VALUES ($1, $2, 'events.billing.subscription.changed', '\\x00', 'handler failed: boom', 3) \
             RETURNING id",
        )
        .bind(consumer)
        .bind(uuid::Uuid::now_v7())
        .fetch_one(&pool)
        .await
        .expect("insert a dead letter")
    }

    async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean shutdown");
        }
    }
}

fn states(listing: &Value, id: &str) -> Vec<String> {
    listing["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter(|t| t["id"] == id)
        .map(|t| t["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_approves_suspends_and_reactivates_a_tenant() {
    let mesh = Mesh::start().await;
    let token = mesh.admin_token();
    let tenant = mesh.pending_tenant("acme").await;
    let other = mesh.pending_tenant("globex").await;

    let pending = mesh
        .keelctl(
            Some(&token),
            &["--json", "tenants", "list", "--state", "pending"],
        )
        .await
        .json();
    assert_eq!(states(&pending, &tenant.id), vec!["pending"]);
    assert_eq!(states(&pending, &other.id), vec!["pending"]);

    let approved = mesh
        .keelctl(Some(&token), &["--json", "tenants", "approve", &tenant.id])
        .await
        .json();
    assert_eq!(approved["state"], "active");
    assert_eq!(approved["slug"], "acme");

    let suspended = mesh
        .keelctl(
            Some(&token),
            &[
                "--json",
                "tenants",
                "suspend",
                &tenant.id,
                "--reason",
                "unpaid invoices",
            ],
        )
        .await
        .json();
    assert_eq!(suspended["state"], "suspended");
    let listed = mesh
        .keelctl(
            Some(&token),
            &["--json", "tenants", "list", "--state", "suspended"],
        )
        .await
        .json();
    assert_eq!(states(&listed, &tenant.id), vec!["suspended"]);
    assert!(states(&listed, &other.id).is_empty(), "{listed}");

    let reactivated = mesh
        .keelctl(
            Some(&token),
            &["--json", "tenants", "reactivate", &tenant.id],
        )
        .await
        .json();
    assert_eq!(reactivated["state"], "active");
    let got = mesh
        .keelctl(Some(&token), &["--json", "tenants", "get", &tenant.id])
        .await
        .json();
    assert_eq!(got["state"], "active");

    // The table a person reads: a header and one line per tenant.
    let table = mesh.keelctl(Some(&token), &["tenants", "list"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATE"),
        "{}",
        table.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&tenant.id) && l.contains("active")),
        "{}",
        table.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&other.id) && l.contains("pending")),
        "{}",
        table.stdout
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_missing_or_unprivileged_token_is_a_clear_error_and_exit_3() {
    let mesh = Mesh::start().await;
    let tenant = mesh.pending_tenant("initech").await;

    let forged = mesh.keelctl(Some("not-a-jwt"), &["tenants", "list"]).await;
    assert_eq!(forged.code, 3, "{}", forged.stderr);
    assert!(
        forged.stderr.contains("refused the token"),
        "{}",
        forged.stderr
    );
    assert!(forged.stdout.is_empty(), "{}", forged.stdout);

    let missing = mesh
        .keelctl(None, &["tenants", "approve", &tenant.id])
        .await;
    assert_eq!(missing.code, 3, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("KEELCTL_TOKEN"),
        "{}",
        missing.stderr
    );

    // A tenant owner's token is genuine but holds no platform rights.
    let owner = mesh.issuer.token(
        TokenSpec::user(UserId::new())
            .tenant(tenant.id.parse().expect("tenant id"))
            .role(roles::OWNER)
            .perms(roles::built_in(roles::OWNER).expect("owner role")),
    );
    let unprivileged = mesh
        .keelctl(Some(&owner), &["tenants", "approve", &tenant.id])
        .await;
    assert_ne!(unprivileged.code, 0, "{}", unprivileged.stdout);

    let dead_letters = mesh
        .keelctl(
            Some("not-a-jwt"),
            &["dead-letters", "list", "-s", "tenancy"],
        )
        .await;
    assert_eq!(dead_letters.code, 3, "{}", dead_letters.stderr);
    assert!(
        dead_letters.stderr.contains("refused the token"),
        "{}",
        dead_letters.stderr
    );
    let replay = mesh
        .keelctl(
            Some(&owner),
            &["dead-letters", "replay", "-s", "tenancy", "--all"],
        )
        .await;
    assert_eq!(replay.code, 3, "{}", replay.stderr);

    // Nothing changed.
    let listed = mesh
        .keelctl(
            Some(&mesh.admin_token()),
            &["--json", "tenants", "get", &tenant.id],
        )
        .await
        .json();
    assert_eq!(listed["state"], "pending");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_and_replays_dead_letters() {
    let mesh = Mesh::start().await;
    let token = mesh.admin_token();
    // A consumer name no running consumer has, so the replay request stays visible.
    let first = mesh.dead_letter("tenancy-keelctl-test").await;
    let second = mesh.dead_letter("tenancy-keelctl-test").await;
    let third = mesh.dead_letter("tenancy-keelctl-test").await;

    let listed = mesh
        .keelctl(
            Some(&token),
            &["--json", "dead-letters", "list", "-s", "tenancy"],
        )
        .await
        .json();
    let ids: Vec<i64> = listed["deadLetters"]
        .as_array()
        .expect("deadLetters")
        .iter()
        .map(|d| d["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, vec![third, second, first], "newest first");
    assert_eq!(listed["deadLetters"][0]["service"], "tenancy");
    assert_eq!(listed["deadLetters"][0]["error"], "handler failed: boom");

    let one = mesh
        .keelctl(
            Some(&token),
            &[
                "--json",
                "dead-letters",
                "replay",
                "-s",
                "tenancy",
                &first.to_string(),
            ],
        )
        .await
        .json();
    assert_eq!(one["replayRequested"], serde_json::json!([first]));
    let pool = mesh.db.admin_pool().await;
    let requested: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM tenancy.dead_letters WHERE replay_requested_at IS NOT NULL ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("query");
    assert_eq!(requested, vec![first]);

    let all = mesh
        .keelctl(
            Some(&token),
            &["--json", "dead-letters", "replay", "-s", "tenancy", "--all"],
        )
        .await
        .json();
    assert_eq!(
        all["replayRequested"],
        serde_json::json!([third, second, first])
    );
    let requested: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenancy.dead_letters WHERE replay_requested_at IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .expect("query");
    assert_eq!(requested, 3);

    let unknown = mesh
        .keelctl(
            Some(&token),
            &["dead-letters", "replay", "-s", "tenancy", "999999"],
        )
        .await;
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("404"), "{}", unknown.stderr);

    let table = mesh
        .keelctl(Some(&token), &["dead-letters", "list", "-s", "tenancy"])
        .await;
    assert!(table.stdout.starts_with("SERVICE"), "{}", table.stdout);
    assert!(
        table.stdout.contains("tenancy-keelctl-test"),
        "{}",
        table.stdout
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_status_shows_the_backlog_while_the_broker_is_down() {
    let mut mesh = Mesh::start().await;
    let token = mesh.admin_token();
    mesh.nats.stop().await;
    mesh.pending_tenant("stuck").await;

    let status = mesh
        .keelctl(
            Some(&token),
            &["--json", "outbox", "status", "-s", "tenancy"],
        )
        .await
        .json();
    let tenancy = &status["outbox"][0];
    assert_eq!(tenancy["service"], "tenancy");
    assert!(
        tenancy["backlog"].as_i64().expect("backlog") >= 1,
        "{status}"
    );
    assert!(
        tenancy["oldestAgeSeconds"].as_f64().expect("an age") >= 0.0,
        "{status}"
    );

    let refused = mesh
        .keelctl(Some("not-a-jwt"), &["outbox", "status", "-s", "tenancy"])
        .await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);

    mesh.nats.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = mesh
            .keelctl(
                Some(&token),
                &["--json", "outbox", "status", "-s", "tenancy"],
            )
            .await
            .json();
        if status["outbox"][0]["backlog"] == 0 {
            assert!(
                status["outbox"][0]["oldestAgeSeconds"].is_null(),
                "{status}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backlog never drained: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_lists_the_services_consumers_from_metrics_and_an_unreachable_service_exits_4() {
    let mesh = Mesh::start().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let lag = mesh
            .keelctl(None, &["--json", "lag", "-s", "tenancy"])
            .await
            .json();
        let consumers = lag["consumers"].as_array().expect("consumers").clone();
        if consumers.iter().any(|c| c["lag"].is_i64()) {
            assert!(consumers.iter().all(|c| c["service"] == "tenancy"), "{lag}");
            assert!(
                consumers.iter().all(|c| c["consumer"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("tenancy-")),
                "{lag}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no consumer lag reported: {lag}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every service by default: the others are not running here.
    let partial = mesh.keelctl(None, &["--json", "lag"]).await;
    assert_eq!(partial.code, 4, "{}", partial.stderr);
    assert!(partial.stderr.contains("not reached"), "{}", partial.stderr);
    let shown: Value = serde_json::from_str(&partial.stdout).expect("JSON still printed");
    assert!(
        shown["unreachable"]
            .as_array()
            .expect("unreachable")
            .iter()
            .all(|s| s != "tenancy"),
        "{shown}"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_writes_a_key_identity_loads_and_admins_create_edits_the_config() {
    let mesh = Mesh::start().await;
    let dir = std::env::temp_dir().join(format!("keelctl-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("identity.yaml");
    let repo_config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/identity.yaml");
    std::fs::copy(repo_config, &config).expect("copy identity.yaml");
    let config_arg = config.display().to_string();
    let key_dir = dir.join("keys").display().to_string();

    let rotated = mesh
        .keelctl(
            None,
            &[
                "--json",
                "keys",
                "rotate",
                "--kid",
                "k2",
                "--key-dir",
                &key_dir,
                "--identity-config",
                &config_arg,
            ],
        )
        .await
        .json();
    let file = rotated["file"].as_str().expect("file");
    let pem = std::fs::read_to_string(file).expect("the key file");
    keel_identity::keys::SigningKey::from_pem("k2", &pem).expect("identity loads the new key");
    assert_eq!(rotated["steps"].as_array().expect("steps").len(), 3);
    assert!(
        rotated["steps"][1]["config"]
            .as_str()
            .expect("config")
            .contains("active_kid: k2"),
        "{rotated}"
    );
    // The same kid again is refused rather than overwriting a key.
    let again = mesh
        .keelctl(
            None,
            &[
                "keys",
                "rotate",
                "--kid",
                "dev-1",
                "--key-dir",
                &key_dir,
                "--identity-config",
                &config_arg,
            ],
        )
        .await;
    assert_eq!(again.code, 1, "{}", again.stderr);

    let created = mesh
        .keelctl(
            None,
            &[
                "--json",
                "admins",
                "create",
                "Ops@Example.com",
                "--write",
                "--identity-config",
                &config_arg,
            ],
        )
        .await
        .json();
    assert_eq!(created["written"], true);
    let text = std::fs::read_to_string(&config).expect("config");
    let parsed: keel_kernel::config::Config<keel_identity::Settings> =
        keel_kernel::config::Config::from_yaml(&text, &config, std::iter::empty())
            .expect("identity still accepts its config");
    assert_eq!(
        parsed.app.platform_admins,
        vec!["Ops@Example.com".to_owned()]
    );
    let listed = mesh
        .keelctl(
            None,
            &["--json", "admins", "list", "--identity-config", &config_arg],
        )
        .await
        .json();
    assert_eq!(
        listed["platformAdmins"],
        serde_json::json!(["Ops@Example.com"])
    );

    let bad = mesh
        .keelctl(
            None,
            &[
                "admins",
                "create",
                "not-an-email",
                "--identity-config",
                &config_arg,
            ],
        )
        .await;
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("not an email address"),
        "{}",
        bad.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
    mesh.stop().await;
}

/// Identity on port 0 with the signing keys `keys` (the first active).
async fn start_identity(
    db: &TestDatabase,
    nats: &TestNats,
    keys: &[(&str, std::path::PathBuf)],
) -> Running {
    use keel_identity::settings::{HashingSettings, SigningKeyFile, SigningSettings};
    let settings = keel_identity::Settings {
        signing: SigningSettings {
            active_kid: keys[0].0.into(),
            keys: keys
                .iter()
                .map(|(kid, file)| SigningKeyFile {
                    kid: (*kid).into(),
                    private_key_file: file.clone(),
                })
                .collect(),
        },
        // Light argon2: the hashing cost is not what this test is about.
        password_hashing: HashingSettings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            ..HashingSettings::default()
        },
        ..keel_identity::Settings::default()
    };
    let mut config = stack::config_with(
        "identity",
        db.provision("identity").await,
        stack::nats_config(&nats.url()),
        settings,
    );
    config.auth = keel_kernel::config::AuthConfig {
        jwks_url: String::new(),
        issuer: "keel-test".into(),
        audience: "keel".into(),
        jwks_min_refetch_secs: 0,
        leeway_secs: 5,
    };
    keel_identity::build(config).await.expect("identity starts")
}

async fn keelctl_at(identity: &Running, password: Option<&str>, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_keelctl"));
    command
        .env_remove("KEELCTL_TOKEN")
        .env_remove("KEELCTL_PASSWORD")
        .arg("--identity-grpc")
        .arg(format!("http://{}", identity.grpc_addr))
        .args(args)
        .stdin(std::process::Stdio::null());
    if let Some(password) = password {
        command.env("KEELCTL_PASSWORD", password);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("keelctl finishes")
        .expect("keelctl runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_published_by_identity_and_login_signs_with_the_active_one() {
    use base64::Engine as _;
    use keel_proto::identity::v1 as ipb;
    use keel_proto::identity::v1::auth_service_client::AuthServiceClient;

    let dir = std::env::temp_dir().join(format!("keelctl-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let first = dir.join("k1.pem");
    keel_testkit::tokens::write_ed25519_pem(&first);
    let config = dir.join("identity.yaml");
    std::fs::write(
        &config,
        format!(
            "app:\n  signing:\n    active_kid: k1\n    keys:\n      - kid: k1\n        private_key_file: {}\n",
            first.display()
        ),
    )
    .expect("write config");

    // Step 1 of a rotation: keelctl makes k2; identity publishes both, k1 still signs.
    let db = TestDatabase::create().await;
    let nats = TestNats::start().await;
    let key_dir = dir.join("keys");
    let rotate = keelctl_plain(&[
        "--json",
        "keys",
        "rotate",
        "--kid",
        "k2",
        "--key-dir",
        &key_dir.display().to_string(),
        "--identity-config",
        &config.display().to_string(),
    ])
    .await
    .json();
    let second = std::path::PathBuf::from(rotate["file"].as_str().expect("file"));
    let identity =
        start_identity(&db, &nats, &[("k1", first.clone()), ("k2", second.clone())]).await;

    let listed = keelctl_at(&identity, None, &["--json", "keys", "list"])
        .await
        .json();
    let published: Vec<(String, bool)> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap_or_default().to_owned(),
                k["active"] == true,
            )
        })
        .collect();
    assert_eq!(
        published,
        vec![("k1".to_owned(), true), ("k2".to_owned(), false)]
    );

    let password = "Correct horse battery staple 42";
    AuthServiceClient::connect(format!("http://{}", identity.grpc_addr))
        .await
        .expect("connect to identity")
        .register(ipb::RegisterRequest {
            email: "ops@example.com".into(),
            password: password.into(),
            display_name: "Ops".into(),
        })
        .await
        .expect("register");
    let login = keelctl_at(
        &identity,
        Some(password),
        &["login", "--email", "ops@example.com"],
    )
    .await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    let token = login.stdout.trim();
    let header = token.split('.').next().expect("a JWT");
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("base64url header"),
    )
    .expect("JSON header");
    assert_eq!(header["kid"], "k1");

    let wrong = keelctl_at(
        &identity,
        Some("not the password"),
        &["login", "--email", "ops@example.com"],
    )
    .await;
    assert_eq!(wrong.code, 3, "{}", wrong.stderr);
    assert!(wrong.stdout.is_empty());

    identity.stop().await.expect("clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

/// keelctl for a local-file command (no service involved).
async fn keelctl_plain(args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_keelctl"))
        .env_remove("KEELCTL_TOKEN")
        .args(args)
        .output()
        .await
        .expect("keelctl runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
