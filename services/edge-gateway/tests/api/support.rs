//! The test harness: a real tonic server with test services behind a real gateway, both on
//! `127.0.0.1:0`, and a token issuer with a live JWKS endpoint.
//!
//! The upstream serves:
//! - `keel.test.v1.EchoService` (tests/proto): compiled at test time and served dynamically with
//!   the gateway's own `DynamicCodec`; it echoes what it received, so a test sees exactly what the
//!   gateway transcoded;
//! - `ai.v1.AiService` (generated server trait): completions, streaming, memories;
//! - `identity.v1.AuthService` (generated): only `ExchangeApiKey`, for API keys;
//! - `tenancy.v1.ModuleService` (generated): only `GetEntitlements`, for tenant checks.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use keel_edge_gateway::config::{GatewayConfig, parse};
use keel_edge_gateway::{Application, DynamicCodec, Loaded, descriptors};
use keel_kernel::TenantId;
use keel_proto::ai::v1 as ai;
use keel_proto::identity::v1 as identity;
use keel_proto::tenancy::v1 as tenancy;
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ServiceDescriptor, Value};
use serde_json::Value as Json;
use tonic::server::NamedService;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub const ECHO: &str = "keel.test.v1.EchoService";

/// The route table most tests use; `{upstream}` is the test server's address.
pub const ROUTES: &str = r#"
upstreams:
  test: { address: "{upstream}", timeout_ms: 3000, retries: 2 }
services:
  keel.test.v1.EchoService:
    upstream: test
    methods:
      GetAnyTenantThing: { tenant_match: false }
  ai.v1.AiService:
    upstream: test
    module: ai
forward_headers: [accept-language]
api_keys: { upstream: test, cache_secs: 30 }
entitlements: { upstream: test, cache_secs: 30 }
cors:
  allowed_origins: ["https://app.example.com"]
"#;

/// Every proto of the platform plus the test proto.
pub fn pool() -> DescriptorPool {
    static SET: OnceLock<Vec<u8>> = OnceLock::new();
    let set = SET.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let tests = root.join("tests/proto");
        let platform = root.join("../../proto");
        // Encoded by protox itself: `prost_types` would drop the `google.api.http` options.
        let mut compiler =
            protox::Compiler::new([tests.clone(), platform]).expect("include paths exist");
        compiler.include_imports(true).include_source_info(true);
        compiler
            .open_file(tests.join("keel/test/v1/echo.proto"))
            .expect("the test proto compiles");
        compiler.encode_file_descriptor_set()
    });
    descriptors::pool(&[set]).expect("the descriptors load")
}

// ---------------------------------------------------------------------------------------------
// The echo service (dynamic)
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub struct EchoState {
    flaky: Mutex<HashMap<String, i32>>,
    pub calls: AtomicUsize,
}

#[derive(Clone)]
pub struct Echo {
    service: ServiceDescriptor,
    pub state: Arc<EchoState>,
}

impl NamedService for Echo {
    const NAME: &'static str = ECHO;
}

impl tower::Service<http::Request<tonic::body::Body>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            this.state.calls.fetch_add(1, Ordering::SeqCst);
            let name = request
                .uri()
                .path()
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned();
            let Some(method) = this.service.methods().find(|m| m.name() == name) else {
                return Ok(Status::unimplemented("no such method").into_http());
            };
            let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(method.input()));
            if method.is_server_streaming() {
                let output = method.output();
                Ok(grpc.server_streaming(CountService(output), request).await)
            } else {
                let service = EchoUnary {
                    state: this.state.clone(),
                    name,
                    output: method.output(),
                };
                Ok(grpc.unary(service, request).await)
            }
        })
    }
}

struct EchoUnary {
    state: Arc<EchoState>,
    name: String,
    output: MessageDescriptor,
}

impl tonic::server::UnaryService<DynamicMessage> for EchoUnary {
    type Response = DynamicMessage;
    type Future = BoxFuture<'static, Result<tonic::Response<DynamicMessage>, Status>>;

    fn call(&mut self, request: tonic::Request<DynamicMessage>) -> Self::Future {
        let state = self.state.clone();
        let name = self.name.clone();
        let output = self.output.clone();
        Box::pin(async move {
            let (metadata, _, mut message) = request.into_parts();
            let int = |m: &DynamicMessage, f: &str| {
                m.get_field_by_name(f).and_then(|v| v.as_i32()).unwrap_or(0)
            };
            let text = |m: &DynamicMessage, f: &str| {
                m.get_field_by_name(f)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            };
            match name.as_str() {
                "Fail" => Err(failure(&message)),
                "Slow" => {
                    tokio::time::sleep(Duration::from_millis(int(&message, "millis") as u64)).await;
                    Ok(tonic::Response::new(DynamicMessage::new(output)))
                }
                "Flaky" => {
                    let key = text(&message, "key");
                    let attempts = {
                        let mut counts = state.flaky.lock().expect("flaky lock");
                        let count = counts.entry(key).or_insert(0);
                        *count += 1;
                        *count
                    };
                    if attempts <= int(&message, "failures") {
                        return Err(Status::unavailable("not yet"));
                    }
                    message.set_field_by_name("attempts", Value::I32(attempts));
                    Ok(tonic::Response::new(message))
                }
                "Headers" | "Ping" => {
                    let mut reply = DynamicMessage::new(output);
                    let mut map = HashMap::new();
                    for (key, value) in metadata.into_headers().iter() {
                        let value = value.to_str().unwrap_or("<binary>").to_owned();
                        map.insert(
                            prost_reflect::MapKey::String(key.as_str().to_owned()),
                            Value::String(value),
                        );
                    }
                    reply.set_field_by_name("metadata", Value::Map(map));
                    Ok(tonic::Response::new(reply))
                }
                _ => {
                    if message.descriptor().get_field_by_name("method").is_some() {
                        message.set_field_by_name("method", Value::String(name));
                    }
                    Ok(tonic::Response::new(message))
                }
            }
        })
    }
}

use prost_reflect::ReflectMessage;

/// The status a `FailRequest` describes.
fn failure(message: &DynamicMessage) -> Status {
    let get = |f: &str| message.get_field_by_name(f).map(|v| v.into_owned());
    let code = Code::from(get("code").and_then(|v| v.as_i32()).unwrap_or(2));
    let text = get("message")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let platform = get("platform_code")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let retry = get("retry_after_secs")
        .and_then(|v| v.as_i32())
        .unwrap_or(0);
    let violations: Vec<(String, String)> = match get("violations") {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|item| item.as_message())
            .map(|v| {
                let field = |n: &str| {
                    v.get_field_by_name(n)
                        .and_then(|x| x.as_str().map(str::to_owned))
                        .unwrap_or_default()
                };
                (field("field"), field("description"))
            })
            .collect(),
        _ => Vec::new(),
    };
    if platform.is_empty() && violations.is_empty() && retry == 0 {
        return Status::new(code, text);
    }
    let mut details = if platform.is_empty() {
        ErrorDetails::new()
    } else {
        ErrorDetails::with_error_info(platform, "test", HashMap::new())
    };
    for (field, description) in violations {
        details.add_bad_request_violation(field, description);
    }
    if retry > 0 {
        details.set_retry_info(Some(Duration::from_secs(retry as u64)));
    }
    Status::with_error_details(code, text, details)
}

struct CountService(MessageDescriptor);

impl tonic::server::ServerStreamingService<DynamicMessage> for CountService {
    type Response = DynamicMessage;
    type ResponseStream = BoxStream<'static, Result<DynamicMessage, Status>>;
    type Future = BoxFuture<'static, Result<tonic::Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: tonic::Request<DynamicMessage>) -> Self::Future {
        let output = self.0.clone();
        Box::pin(async move {
            let message = request.into_inner();
            let int = |f: &str| {
                message
                    .get_field_by_name(f)
                    .and_then(|v| v.as_i32())
                    .unwrap_or(0)
            };
            let (n, fail_at, pause_ms) = (int("n"), int("fail_at"), int("pause_ms"));
            if output.get_field_by_name("event_id").is_some() {
                // A watch: events with ids, `pause_ms` apart.
                let stream: Self::ResponseStream = Box::pin(futures::stream::unfold(0, move |i| {
                    let output = output.clone();
                    async move {
                        if i >= n {
                            return None;
                        }
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(pause_ms as u64)).await;
                        }
                        let mut event = DynamicMessage::new(output);
                        event.set_field_by_name("event_id", Value::String(format!("ev-{i}")));
                        event.set_field_by_name("n", Value::I32(i));
                        Some((Ok(event), i + 1))
                    }
                }));
                return Ok(tonic::Response::new(stream));
            }
            if fail_at < 0 {
                return Err(Status::permission_denied("counting is not allowed"));
            }
            let items: Vec<Result<DynamicMessage, Status>> = (0..n)
                .map_while(|i| {
                    if fail_at > 0 && i == fail_at {
                        return None;
                    }
                    let mut thing = DynamicMessage::new(output.clone());
                    thing.set_field_by_name("id", Value::String(i.to_string()));
                    thing.set_field_by_name("big", Value::I64(i64::from(i) + (1 << 53)));
                    Some(Ok(thing))
                })
                .chain((fail_at > 0).then(|| Err(Status::resource_exhausted("quota used up"))))
                .collect();
            let stream: Self::ResponseStream = Box::pin(futures::stream::iter(items));
            Ok(tonic::Response::new(stream))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// ai.v1.AiService (generated trait)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
pub struct Ai;

type ChunkStream = Pin<Box<dyn Stream<Item = Result<ai::CompletionChunk, Status>> + Send>>;

fn usage() -> ai::TokenUsage {
    ai::TokenUsage {
        prompt_tokens: 3,
        completion_tokens: 4,
        total_tokens: 7,
        // Beyond 2^53: only exact as a string.
        cost_micros: 9_007_199_254_740_993,
        currency: "USD".into(),
    }
}

#[tonic::async_trait]
impl ai::ai_service_server::AiService for Ai {
    async fn complete(
        &self,
        request: tonic::Request<ai::CompleteRequest>,
    ) -> Result<tonic::Response<ai::Completion>, Status> {
        let request = request.into_inner();
        Ok(tonic::Response::new(ai::Completion {
            id: format!("completion-for-{}", request.tenant_id),
            model: if request.model.is_empty() {
                "local-default".into()
            } else {
                request.model
            },
            message: Some(ai::ChatMessage {
                role: ai::ChatRole::Assistant as i32,
                content: format!(
                    "{} messages; prompt: {}",
                    request.messages.len(),
                    request.prompt
                ),
            }),
            finish_reason: ai::FinishReason::Stop as i32,
            usage: Some(usage()),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
        }))
    }

    type StreamCompleteStream = ChunkStream;

    async fn stream_complete(
        &self,
        request: tonic::Request<ai::CompleteRequest>,
    ) -> Result<tonic::Response<ChunkStream>, Status> {
        let request = request.into_inner();
        let words: Vec<String> = request
            .prompt
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let fail = words.iter().any(|w| w == "fail");
        let mut chunks: Vec<Result<ai::CompletionChunk, Status>> = words
            .into_iter()
            .take_while(|w| w != "fail")
            .map(|w| {
                Ok(ai::CompletionChunk {
                    id: "c1".into(),
                    delta: w,
                    ..Default::default()
                })
            })
            .collect();
        chunks.push(if fail {
            Err(Status::unavailable("the model went away"))
        } else {
            Ok(ai::CompletionChunk {
                id: "c1".into(),
                finish_reason: ai::FinishReason::Stop as i32,
                usage: Some(usage()),
                ..Default::default()
            })
        });
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(
            chunks,
        ))))
    }

    async fn get_quota(
        &self,
        request: tonic::Request<ai::GetQuotaRequest>,
    ) -> Result<tonic::Response<ai::Quota>, Status> {
        Ok(tonic::Response::new(ai::Quota {
            tenant_id: request.into_inner().tenant_id,
            limit_tokens: -1,
            remaining_tokens: -1,
            ..Default::default()
        }))
    }

    async fn list_usage(
        &self,
        request: tonic::Request<ai::ListUsageRequest>,
    ) -> Result<tonic::Response<ai::ListUsageResponse>, Status> {
        let request = request.into_inner();
        Ok(tonic::Response::new(ai::ListUsageResponse {
            usage_records: vec![ai::UsageRecord {
                id: "u1".into(),
                tenant_id: request.tenant_id,
                status: ai::CallStatus::Succeeded as i32,
                request_id: request.page_size.to_string(),
                create_time: request.start_time,
                ..Default::default()
            }],
            next_page_token: request.page_token,
        }))
    }

    async fn put_memory(
        &self,
        request: tonic::Request<ai::PutMemoryRequest>,
    ) -> Result<tonic::Response<ai::Memory>, Status> {
        let request = request.into_inner();
        let mut memory = request.memory.unwrap_or_default();
        memory.id = request.memory_id;
        memory.tenant_id = request.tenant_id;
        Ok(tonic::Response::new(memory))
    }

    async fn delete_memory(
        &self,
        _: tonic::Request<ai::DeleteMemoryRequest>,
    ) -> Result<tonic::Response<()>, Status> {
        Ok(tonic::Response::new(()))
    }

    async fn search_memories(
        &self,
        _: tonic::Request<ai::SearchMemoriesRequest>,
    ) -> Result<tonic::Response<ai::SearchMemoriesResponse>, Status> {
        Ok(tonic::Response::new(ai::SearchMemoriesResponse::default()))
    }
}

// ---------------------------------------------------------------------------------------------
// identity.v1.AuthService: ExchangeApiKey only
// ---------------------------------------------------------------------------------------------

/// The API key secret the fake identity accepts.
pub const GOOD_KEY: &str = "keel_ak_test_good";

pub struct FakeIdentity {
    pub issuer: Arc<TestIssuer>,
    pub tenant: TenantId,
    pub exchanges: Arc<AtomicUsize>,
}

fn unimplemented<T>() -> Result<tonic::Response<T>, Status> {
    Err(Status::unimplemented("not in this test"))
}

#[tonic::async_trait]
impl identity::auth_service_server::AuthService for FakeIdentity {
    async fn register(
        &self,
        _: tonic::Request<identity::RegisterRequest>,
    ) -> Result<tonic::Response<identity::User>, Status> {
        unimplemented()
    }
    async fn login(
        &self,
        _: tonic::Request<identity::LoginRequest>,
    ) -> Result<tonic::Response<identity::TokenPair>, Status> {
        unimplemented()
    }
    async fn refresh(
        &self,
        _: tonic::Request<identity::RefreshRequest>,
    ) -> Result<tonic::Response<identity::TokenPair>, Status> {
        unimplemented()
    }
    async fn logout(
        &self,
        _: tonic::Request<identity::LogoutRequest>,
    ) -> Result<tonic::Response<()>, Status> {
        unimplemented()
    }
    async fn switch_tenant(
        &self,
        _: tonic::Request<identity::SwitchTenantRequest>,
    ) -> Result<tonic::Response<identity::TokenPair>, Status> {
        unimplemented()
    }
    async fn verify_email(
        &self,
        _: tonic::Request<identity::VerifyEmailRequest>,
    ) -> Result<tonic::Response<identity::User>, Status> {
        unimplemented()
    }
    async fn request_email_verification(
        &self,
        _: tonic::Request<identity::RequestEmailVerificationRequest>,
    ) -> Result<tonic::Response<()>, Status> {
        unimplemented()
    }
    async fn change_password(
        &self,
        _: tonic::Request<identity::ChangePasswordRequest>,
    ) -> Result<tonic::Response<()>, Status> {
        unimplemented()
    }
    async fn get_jwks(
        &self,
        _: tonic::Request<identity::GetJwksRequest>,
    ) -> Result<tonic::Response<identity::Jwks>, Status> {
        unimplemented()
    }
    async fn issue_verification_token(
        &self,
        _: tonic::Request<identity::IssueVerificationTokenRequest>,
    ) -> Result<tonic::Response<identity::IssueVerificationTokenResponse>, Status> {
        unimplemented()
    }
    async fn request_password_reset(
        &self,
        _: tonic::Request<identity::RequestPasswordResetRequest>,
    ) -> Result<tonic::Response<()>, Status> {
        unimplemented()
    }
    async fn reset_password(
        &self,
        _: tonic::Request<identity::ResetPasswordRequest>,
    ) -> Result<tonic::Response<()>, Status> {
        unimplemented()
    }
    async fn issue_password_reset_token(
        &self,
        _: tonic::Request<identity::IssuePasswordResetTokenRequest>,
    ) -> Result<tonic::Response<identity::IssuePasswordResetTokenResponse>, Status> {
        unimplemented()
    }
    async fn issue_service_token(
        &self,
        _: tonic::Request<identity::IssueServiceTokenRequest>,
    ) -> Result<tonic::Response<identity::IssueServiceTokenResponse>, Status> {
        unimplemented()
    }
    async fn exchange_api_key(
        &self,
        request: tonic::Request<identity::ExchangeApiKeyRequest>,
    ) -> Result<tonic::Response<identity::ExchangeApiKeyResponse>, Status> {
        self.exchanges.fetch_add(1, Ordering::SeqCst);
        if request.into_inner().secret != GOOD_KEY {
            return Err(Status::unauthenticated("unknown API key"));
        }
        let token = self.issuer.token(
            TokenSpec::api_key("key-1", self.tenant)
                .perm("*")
                .scopes(["ai.*.*"]),
        );
        Ok(tonic::Response::new(identity::ExchangeApiKeyResponse {
            key_id: "key-1".into(),
            tenant_id: self.tenant.to_string(),
            scopes: vec!["ai.*.*".into()],
            access_token: token,
            expires_in: 300,
            key_expire_time: None,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// tenancy.v1.ModuleService: GetEntitlements only
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub struct TenancyState {
    /// Tenants not listed are ACTIVE with the `ai` module.
    pub tenants: Mutex<HashMap<String, (tenancy::TenantState, Vec<String>)>>,
    pub lookups: AtomicUsize,
}

pub struct FakeTenancy(pub Arc<TenancyState>);

#[tonic::async_trait]
impl tenancy::module_service_server::ModuleService for FakeTenancy {
    async fn list_modules(
        &self,
        _: tonic::Request<tenancy::ListModulesRequest>,
    ) -> Result<tonic::Response<tenancy::ListModulesResponse>, Status> {
        unimplemented()
    }
    async fn enable_module(
        &self,
        _: tonic::Request<tenancy::EnableModuleRequest>,
    ) -> Result<tonic::Response<tenancy::TenantModule>, Status> {
        unimplemented()
    }
    async fn disable_module(
        &self,
        _: tonic::Request<tenancy::DisableModuleRequest>,
    ) -> Result<tonic::Response<tenancy::TenantModule>, Status> {
        unimplemented()
    }
    async fn set_feature_flag(
        &self,
        _: tonic::Request<tenancy::SetFeatureFlagRequest>,
    ) -> Result<tonic::Response<tenancy::FeatureFlag>, Status> {
        unimplemented()
    }
    async fn get_entitlements(
        &self,
        request: tonic::Request<tenancy::GetEntitlementsRequest>,
    ) -> Result<tonic::Response<tenancy::Entitlements>, Status> {
        self.0.lookups.fetch_add(1, Ordering::SeqCst);
        if request.metadata().get("authorization").is_none() {
            return Err(Status::unauthenticated("missing bearer token"));
        }
        let tenant_id = request.into_inner().tenant_id;
        let (state, modules) = self
            .0
            .tenants
            .lock()
            .expect("tenancy lock")
            .get(&tenant_id)
            .cloned()
            .unwrap_or((tenancy::TenantState::Active, vec!["ai".into()]));
        Ok(tonic::Response::new(tenancy::Entitlements {
            tenant_id,
            state: state as i32,
            plan: "free".into(),
            enabled_modules: modules,
            flags: HashMap::new(),
            version: 1,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

pub struct Harness {
    pub base: String,
    pub http: reqwest::Client,
    pub issuer: Arc<TestIssuer>,
    /// The tenant of [`Harness::token`].
    pub tenant: TenantId,
    /// A user token scoped to `tenant` with every permission.
    pub token: String,
    pub echo: Arc<EchoState>,
    pub tenancy: Arc<TenancyState>,
    pub exchanges: Arc<AtomicUsize>,
    pub upstream: String,
    pub app: Option<Application>,
}

/// Start the test upstream server; its address.
pub async fn start_upstream(
    issuer: Arc<TestIssuer>,
    tenant: TenantId,
) -> (String, Arc<EchoState>, Arc<TenancyState>, Arc<AtomicUsize>) {
    let service = pool()
        .get_service_by_name(ECHO)
        .expect("the echo service is in the pool");
    let echo = Echo {
        service,
        state: Arc::default(),
    };
    let tenancy_state = Arc::new(TenancyState::default());
    let exchanges = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the upstream");
    let addr = listener.local_addr().expect("bound");
    let router = tonic::transport::Server::builder()
        .add_service(echo.clone())
        .add_service(ai::ai_service_server::AiServiceServer::new(Ai))
        .add_service(identity::auth_service_server::AuthServiceServer::new(
            FakeIdentity {
                issuer,
                tenant,
                exchanges: exchanges.clone(),
            },
        ))
        .add_service(tenancy::module_service_server::ModuleServiceServer::new(
            FakeTenancy(tenancy_state.clone()),
        ));
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = router.serve_with_incoming(incoming).await;
    });
    (addr.to_string(), echo.state, tenancy_state, exchanges)
}

/// The gateway's main config for tests, against `issuer`'s JWKS.
pub fn gateway_config(issuer: &TestIssuer, extra_http: &str) -> GatewayConfig {
    let text = format!(
        "
http:
  listen: 127.0.0.1:0
  max_body_bytes: 4096
  shutdown_grace_ms: 2000
{extra_http}
auth:
  jwks_url: {jwks}
  issuer: {iss}
  audience: {aud}
  jwks_min_refetch_secs: 0
telemetry:
  log_level: warn
routes: routes.yaml
",
        jwks = issuer.jwks_url(),
        iss = issuer.issuer(),
        aud = issuer.audience(),
    );
    parse(&text, Path::new("edge-gateway.yaml")).expect("the test gateway config is valid")
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with_routes(ROUTES).await
    }

    /// A gateway with `routes` (`{upstream}` replaced by the test server's address).
    pub async fn with_routes(routes: &str) -> Harness {
        Harness::build(routes, "").await
    }

    /// With extra lines under `http:` of the main config (two-space indented).
    pub async fn build(routes: &str, extra_http: &str) -> Harness {
        let issuer = Arc::new(TestIssuer::start().await);
        let tenant = TenantId::new();
        let (upstream, echo, tenancy, exchanges) = start_upstream(issuer.clone(), tenant).await;
        let routes = routes.replace("{upstream}", &upstream);
        let loaded = Loaded::from_parts(
            gateway_config(&issuer, extra_http),
            &routes,
            &PathBuf::from("routes.yaml"),
        )
        .expect("the test route table is valid");
        let app = Application::build(loaded, pool())
            .await
            .expect("the gateway starts");
        let token = issuer.token(TokenSpec::any_user().tenant(tenant).perm("*"));
        Harness {
            base: format!("http://{}", app.addr),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a client"),
            issuer,
            tenant,
            token,
            echo,
            tenancy,
            exchanges,
            upstream,
            app: Some(app),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the harness's token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    pub fn post(&self, path: &str, body: &Json) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path).json(body)
    }

    /// `(status, json)` of a successful JSON answer; panics otherwise.
    pub async fn ok(&self, request: reqwest::RequestBuilder) -> Json {
        let response = request.send().await.expect("the gateway answers");
        let status = response.status();
        let body = response.text().await.expect("a body");
        assert_eq!(status, 200, "expected 200, got {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|err| panic!("not JSON ({err}): {body}"))
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }
}

/// Send and read a problem document, checking its shape: `(status, document)`.
pub async fn problem(request: reqwest::RequestBuilder) -> (u16, Json) {
    let response = request.send().await.expect("the gateway answers");
    problem_of(response).await
}

pub async fn problem_of(response: reqwest::Response) -> (u16, Json) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.text().await.expect("a body");
    assert_eq!(
        content_type, "application/problem+json",
        "status {status}: {body}"
    );
    let doc: Json =
        serde_json::from_str(&body).unwrap_or_else(|err| panic!("not JSON ({err}): {body}"));
    for member in ["type", "title", "detail", "code", "requestId"] {
        assert!(doc[member].is_string(), "`{member}` missing in {doc}");
    }
    assert_eq!(doc["status"], status, "{doc}");
    assert_eq!(doc["requestId"], request_id.as_str(), "{doc}");
    (status, doc)
}

/// A main config for tests that never start a gateway (nothing listens at its JWKS URL).
pub fn gateway_config_offline() -> GatewayConfig {
    let text = "http:\n  listen: 127.0.0.1:0\nauth:\n  jwks_url: http://127.0.0.1:1/jwks\n  issuer: keel\n  audience: keel\nroutes: routes.yaml\n";
    parse(text, Path::new("edge-gateway.yaml")).expect("valid")
}
