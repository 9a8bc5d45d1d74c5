//! The test harness: the real ai-gateway on port 0, against its own Postgres database and its own
//! NATS server, with two fake LLM providers (`keel_testkit::fake_llm`) standing in for the
//! internet, called through the generated gRPC client with tokens from a test issuer.

use std::collections::BTreeMap;

use keel_ai_gateway::Settings;
use keel_ai_gateway::settings::{
    BreakerSettings, DeploymentSettings, ModelSettings, ProviderKind, ProviderSettings,
};
use keel_kernel::app::Running;
use keel_kernel::auth::roles;
use keel_kernel::clock::TestClock;
use keel_kernel::config::DatabaseConfig;
use keel_kernel::{TenantId, UserId};
use keel_proto::ai::v1 as pb;
use keel_proto::ai::v1::ai_service_client::AiServiceClient;
use keel_testkit::EventLog;
use keel_testkit::fake_llm::FakeLlm;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use keel_testkit::Bearer;

pub type Client = AiServiceClient<InterceptedService<Channel, Bearer>>;

/// Models of the test configuration.
pub mod models {
    /// The built-in development provider.
    pub const LOCAL: &str = "local-default";
    /// The OpenAI-compatible fake.
    pub const FAKE: &str = "fake";
    /// The Anthropic fake.
    pub const FAKE_ANTHROPIC: &str = "fake-anthropic";
    /// `backup` first, then `fake`: the fallback and breaker model.
    pub const WITH_FALLBACK: &str = "with-fallback";
}

pub struct TestApp {
    pub issuer: TestIssuer,
    pub nats: TestNats,
    pub db: TestDatabase,
    pub db_config: DatabaseConfig,
    /// Serves `fake` and `fake-anthropic`, and is the second deployment of `with-fallback`.
    pub fake: FakeLlm,
    /// The first deployment of `with-fallback`.
    pub backup: FakeLlm,
    pub channel: Channel,
    /// The service's clock: tests move it instead of sleeping.
    pub clock: TestClock,
    /// The admin port (`/metrics`).
    pub admin_addr: std::net::SocketAddr,
    running: Option<Running>,
}

fn deployment(provider: &str, model: &str) -> DeploymentSettings {
    DeploymentSettings {
        provider: provider.into(),
        model: model.into(),
        // $1 and $2 per million tokens: a call's cost is visible in micros.
        input_micros_per_million: 1_000_000,
        output_micros_per_million: 2_000_000,
        first_byte_timeout_ms: 3_000,
        idle_timeout_ms: 1_500,
    }
}

fn provider(kind: ProviderKind, base_url: String) -> ProviderSettings {
    ProviderSettings {
        kind,
        base_url,
        api_key_env: String::new(),
        connect_timeout_ms: 1_000,
    }
}

/// The test configuration: the local model, the fakes, a breaker opening after 2 failures.
pub fn settings(fake: &FakeLlm, backup: &FakeLlm) -> Settings {
    let defaults = Settings::default();
    let mut providers = defaults.providers.clone();
    providers.insert(
        "fake".into(),
        provider(ProviderKind::Openai, fake.base_url()),
    );
    providers.insert(
        "backup".into(),
        provider(ProviderKind::Openai, backup.base_url()),
    );
    providers.insert(
        "fake-anthropic".into(),
        provider(ProviderKind::Anthropic, fake.base_url()),
    );
    let mut models_map = defaults.models.clone();
    let model = |deployments: Vec<DeploymentSettings>| ModelSettings { deployments };
    models_map.insert(
        models::FAKE.into(),
        model(vec![deployment("fake", "fake-1")]),
    );
    models_map.insert(
        models::FAKE_ANTHROPIC.into(),
        model(vec![deployment("fake-anthropic", "claude-fake")]),
    );
    models_map.insert(
        models::WITH_FALLBACK.into(),
        model(vec![
            deployment("backup", "backup-1"),
            deployment("fake", "fake-1"),
        ]),
    );
    Settings {
        providers,
        models: models_map,
        breaker: BreakerSettings {
            failure_threshold: 2,
            cooldown_ms: 60_000,
        },
        ..defaults
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// The gateway with the test settings, changed by `adjust` first.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let fake = FakeLlm::start().await;
        let backup = FakeLlm::start().await;
        let mut app_settings = settings(&fake, &backup);
        adjust(&mut app_settings);
        let issuer = TestIssuer::start().await;
        let nats = TestNats::start().await;
        let db = TestDatabase::create().await;
        let db_config = db.provision("ai_gateway").await;
        let mut config = stack::config_with(
            "ai-gateway",
            db_config.clone(),
            stack::nats_config(&nats.url()),
            app_settings,
        );
        config.auth = issuer.auth_config();
        let clock = TestClock::new(chrono::Utc::now());
        let running = keel_ai_gateway::build_with_clock(config, clock.shared())
            .await
            .expect("ai-gateway starts");
        let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to the ai-gateway");
        TestApp {
            clock,
            admin_addr: running.admin_addr,
            issuer,
            nats,
            db,
            db_config,
            fake,
            backup,
            channel,
            running: Some(running),
        }
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean shutdown");
        }
    }

    /// Run the jobs due at the test clock's time now; how many ran.
    pub async fn run_due_jobs(&self) -> usize {
        self.running
            .as_ref()
            .expect("running")
            .jobs
            .run_due()
            .await
            .expect("jobs run")
    }

    pub fn client(&self, token: &str) -> Client {
        let bearer = Bearer(Some(
            format!("Bearer {token}").parse().expect("ascii token"),
        ));
        AiServiceClient::with_interceptor(self.channel.clone(), bearer)
    }

    /// A member of `tenant` (completions, memory, usage).
    pub fn member(&self, tenant: TenantId) -> Client {
        self.client(&self.token(tenant, roles::MEMBER))
    }

    pub fn token(&self, tenant: TenantId, role: &str) -> String {
        self.issuer.token(
            TokenSpec::user(UserId::new())
                .tenant(tenant)
                .role(role)
                .perms(roles::built_in(role).expect("a built-in role")),
        )
    }

    /// A member who also holds `extra` permissions.
    pub fn member_with(&self, tenant: TenantId, extra: &[&str]) -> Client {
        let perms = roles::built_in(roles::MEMBER)
            .expect("member")
            .into_iter()
            .chain(extra.iter().copied());
        self.client(
            &self.issuer.token(
                TokenSpec::user(UserId::new())
                    .tenant(tenant)
                    .role(roles::MEMBER)
                    .perms(perms),
            ),
        )
    }

    pub async fn events(&self) -> EventLog {
        EventLog::connect(&self.nats.url()).await
    }
}

/// A request for `model` with one user message.
pub fn ask(tenant: TenantId, model: &str, prompt: &str) -> pb::CompleteRequest {
    pb::CompleteRequest {
        tenant_id: tenant.to_string(),
        model: model.into(),
        prompt: prompt.into(),
        ..Default::default()
    }
}

/// The text and the last chunk of a stream, or the status it ended with.
pub async fn collect(
    client: &mut Client,
    request: pb::CompleteRequest,
) -> Result<(String, pb::CompletionChunk), (String, tonic::Status)> {
    let mut stream = client
        .stream_complete(request)
        .await
        .map_err(|status| (String::new(), status))?
        .into_inner();
    let mut text = String::new();
    let mut last = None;
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                text.push_str(&chunk.delta);
                last = Some(chunk);
            }
            Ok(None) => break,
            Err(status) => return Err((text, status)),
        }
    }
    let last = last.expect("a stream has at least its last chunk");
    Ok((text, last))
}

pub async fn quota(client: &mut Client, tenant: TenantId) -> pb::Quota {
    client
        .get_quota(pb::GetQuotaRequest {
            tenant_id: tenant.to_string(),
        })
        .await
        .expect("quota")
        .into_inner()
}

pub async fn usage(client: &mut Client, tenant: TenantId) -> Vec<pb::UsageRecord> {
    client
        .list_usage(pb::ListUsageRequest {
            tenant_id: tenant.to_string(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("usage")
        .into_inner()
        .usage_records
}

pub async fn remember(
    client: &mut Client,
    tenant: TenantId,
    id: &str,
    namespace: &str,
    content: &str,
    required_permission: &str,
) -> pb::Memory {
    client
        .put_memory(pb::PutMemoryRequest {
            tenant_id: tenant.to_string(),
            memory_id: id.into(),
            memory: Some(pb::Memory {
                namespace: namespace.into(),
                content: content.into(),
                required_permission: required_permission.into(),
                metadata: BTreeMap::from([("source".to_owned(), "test".to_owned())])
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
        })
        .await
        .expect("put memory")
        .into_inner()
}

/// Fill `settings` with a default quota of `tokens` per period.
pub fn with_quota(tokens: i64) -> impl FnOnce(&mut Settings) {
    move |settings| settings.default_period_tokens = tokens
}

/// All memories matching `query` as `client` sees them: (id, score).
pub async fn search(client: &mut Client, tenant: TenantId, query: &str) -> Vec<(String, f64)> {
    client
        .search_memories(pb::SearchMemoriesRequest {
            tenant_id: tenant.to_string(),
            query: query.into(),
            top_k: 10,
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
        .matches
        .into_iter()
        .map(|m| (m.memory.map(|m| m.id).unwrap_or_default(), m.score))
        .collect()
}
