//! Login and token-verification throughput, against the real identity service.

use std::time::{Duration, Instant};

use keel_identity::settings::{IdentitySettings, SigningKeyFile, SigningSettings};
use keel_kernel::auth::JwtVerifier;
use keel_kernel::config::AuthConfig;
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::auth_service_client::AuthServiceClient;
use keel_testkit::{TestDatabase, TestNats, stack, tokens};
use tonic::transport::Channel;

use crate::report::{Report, micros, quantile};

const PASSWORD: &str = "Correct horse 42 battery!";

/// A running identity service on its own database and broker, with one registered user.
pub struct IdentityUnderTest {
    pub running: keel_kernel::app::Running,
    pub auth: AuthServiceClient<Channel>,
    pub channel: Channel,
    pub hashing: keel_identity::settings::HashingSettings,
    _database: TestDatabase,
    _broker: TestNats,
    keys: std::path::PathBuf,
}

impl IdentityUnderTest {
    /// Production password hashing unless `cheap_hashing` (for benchmarks not about login).
    pub async fn start(cheap_hashing: bool) -> anyhow::Result<IdentityUnderTest> {
        let database = TestDatabase::create().await;
        let broker = TestNats::start().await;
        let keys =
            std::env::temp_dir().join(format!("keel-bench-keys-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&keys)?;
        tokens::write_ed25519_pem(&keys.join("bench-1.pem"));
        let mut settings = IdentitySettings {
            signing: SigningSettings {
                active_kid: "bench-1".into(),
                keys: vec![SigningKeyFile {
                    kid: "bench-1".into(),
                    private_key_file: keys.join("bench-1.pem"),
                }],
            },
            ..IdentitySettings::default()
        };
        if cheap_hashing {
            settings.password_hashing.memory_kib = 1024;
            settings.password_hashing.iterations = 1;
        }
        let mut config = stack::config_with(
            "identity",
            database.provision("identity").await,
            stack::nats_config(&broker.url()),
            settings,
        );
        config.auth.issuer = "keel".into();
        config.auth.audience = "keel".into();
        config.telemetry.log_level = "error".into();
        config.grpc.concurrency_limit = 4096;
        let hashing = config.app.password_hashing.clone();
        let running = keel_identity::build(config).await?;
        let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))?
            .connect()
            .await?;
        let mut auth = AuthServiceClient::new(channel.clone());
        auth.register(pb::RegisterRequest {
            email: "bench@example.com".into(),
            password: PASSWORD.into(),
            display_name: "Bench".into(),
        })
        .await?;
        Ok(IdentityUnderTest {
            running,
            auth,
            channel,
            hashing,
            _database: database,
            _broker: broker,
            keys,
        })
    }

    pub async fn access_token(&mut self) -> anyhow::Result<String> {
        let pair = self
            .auth
            .login(pb::LoginRequest {
                email: "bench@example.com".into(),
                password: PASSWORD.into(),
            })
            .await?;
        Ok(pair.into_inner().access_token)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.running.stop().await?;
        let _ = std::fs::remove_dir_all(&self.keys);
        Ok(())
    }
}

pub async fn login_and_verification(
    report: &mut Report,
    logins: usize,
    verifications: usize,
) -> anyhow::Result<()> {
    let identity = IdentityUnderTest::start(false).await?;
    let hashing = identity.hashing.clone();
    let mut auth = identity.auth.clone();
    let login = || pb::LoginRequest {
        email: "bench@example.com".into(),
        password: PASSWORD.into(),
    };

    // Sequential logins: the latency one user sees.
    let mut latencies = Vec::with_capacity(logins);
    let started = Instant::now();
    let mut access_token = String::new();
    for _ in 0..logins {
        let t = Instant::now();
        access_token = auth.login(login()).await?.into_inner().access_token;
        latencies.push(t.elapsed());
    }
    let sequential = started.elapsed();
    latencies.sort();

    // Two concurrent clients: one per core.
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut auth = auth.clone();
        clients.push(tokio::spawn(async move {
            for _ in 0..logins / 2 {
                auth.login(pb::LoginRequest {
                    email: "bench@example.com".into(),
                    password: PASSWORD.into(),
                })
                .await?;
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for client in clients {
        client.await??;
    }
    let concurrent = started.elapsed();

    // Verification as every service does it: the kernel verifier with identity's JWKS over HTTP.
    let verifier = JwtVerifier::new(&AuthConfig {
        jwks_url: format!(
            "http://{}/.well-known/jwks.json",
            identity.running.admin_addr
        ),
        issuer: "keel".into(),
        audience: "keel".into(),
        jwks_min_refetch_secs: 30,
        leeway_secs: 30,
    })?;
    verifier.verify(&access_token).await?; // warm the key cache
    let started = Instant::now();
    for _ in 0..verifications {
        verifier.verify(&access_token).await?;
    }
    let verifying = started.elapsed();

    identity.stop().await?;
    let per_second = |n: usize, d: Duration| format!("{:.0}/s", n as f64 / d.as_secs_f64());
    report.section(
        "Login and token verification",
        &format!(
            "Login: the identity service over gRPC on loopback (argon2id m={} KiB, t={}, p={}; then a \
             session, a refresh token and an EdDSA access token are written and signed). {logins} \
             sequential logins, then {logins} more from 2 concurrent clients. Verification: the \
             kernel's JwtVerifier (EdDSA signature, exp/nbf/iss/aud) with identity's JWKS fetched \
             over HTTP and cached, {verifications} tokens, one task.",
            hashing.memory_kib, hashing.iterations, hashing.parallelism
        ),
        vec![
            ("login p50 (sequential)".into(), micros(quantile(&latencies, 0.5))),
            ("login p99 (sequential)".into(), micros(quantile(&latencies, 0.99))),
            ("login throughput, 1 client".into(), per_second(logins, sequential)),
            ("login throughput, 2 clients".into(), per_second(logins / 2 * 2, concurrent)),
            ("token verifications, 1 task".into(), per_second(verifications, verifying)),
        ],
    );
    Ok(())
}
