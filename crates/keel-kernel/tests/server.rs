//! The server bootstrap end to end: a real gRPC server and admin port on 127.0.0.1:0, called over
//! HTTP/2 and HTTP/1 by real clients; Postgres and NATS from the local stack
//! (`bash scripts/stack.sh up`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_kernel::admin::{AdminServer, ReadinessCheck};
use keel_kernel::auth::Claims;
use keel_kernel::config::{AdminConfig, GrpcConfig, LogFormat, TelemetryConfig};
use keel_kernel::metrics::Metrics;
use keel_kernel::server::{GrpcServer, ServerError, request_id, shutdown_signal};
use keel_kernel::telemetry;
use keel_proto::common::v1::diagnostics_client::DiagnosticsClient;
use keel_proto::common::v1::diagnostics_server::{Diagnostics, DiagnosticsServer};
use keel_proto::common::v1::{WhoAmIRequest, WhoAmIResponse};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use opentelemetry::trace::TraceContextExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument;

const WHO_AM_I: &str = "/common.v1.Diagnostics/WhoAmI";
/// Metadata the test handler obeys: sleep this many milliseconds before answering.
const DELAY: &str = "x-test-delay-ms";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

// ---------------------------------------------------------------------------------------------
// Harness

/// The service under test: echoes the caller's identity and request id, optionally after a delay,
/// and remembers the trace context each call ran under.
#[derive(Clone, Default)]
struct TestDiagnostics {
    seen_traces: Arc<Mutex<Vec<HashMap<String, String>>>>,
    in_flight: Arc<AtomicUsize>,
    /// The most handlers ever running at once.
    max_in_flight: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Diagnostics for TestDiagnostics {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        self.seen_traces
            .lock()
            .expect("trace log")
            .push(telemetry::current_context_map());
        let delay = request
            .metadata()
            .get(DELAY)
            .and_then(|value| value.to_str().ok()?.parse().ok());
        let running = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(running, Ordering::SeqCst);
        if let Some(ms) = delay {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let claims = request.extensions().get::<Claims>();
        Ok(Response::new(WhoAmIResponse {
            subject: claims.map(|c| c.sub.clone()).unwrap_or_default(),
            tenant_id: claims
                .and_then(|c| c.tid)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            roles: claims.map(|c| c.roles.clone()).unwrap_or_default(),
            session_id: claims.and_then(|c| c.sid.clone()).unwrap_or_default(),
            request_id: request_id(&request)
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
        }))
    }
}

fn init_telemetry() {
    // Logs stay off unless asked for (they go straight to stdout); spans, and so trace context,
    // are on regardless of the log level.
    let config = TelemetryConfig {
        log_level: std::env::var("KEEL_TEST_LOG").unwrap_or_else(|_| "off".into()),
        log_format: LogFormat::Json,
        otlp_endpoint: None,
    };
    let guard = telemetry::init("server-test", &config).expect("telemetry");
    // The subscriber lives as long as the test process; there is no exporter to flush.
    std::mem::forget(guard);
}

fn grpc_config() -> GrpcConfig {
    GrpcConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        request_timeout_ms: 5_000,
        concurrency_limit: 64,
        shutdown_grace_ms: 5_000,
        ..GrpcConfig::default()
    }
}

struct App {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    diagnostics: TestDiagnostics,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl App {
    /// A server without authentication.
    async fn start(config: GrpcConfig) -> App {
        App::start_with(config, |server| server.allow_unauthenticated()).await
    }

    async fn start_with(config: GrpcConfig, auth: impl FnOnce(GrpcServer) -> GrpcServer) -> App {
        init_telemetry();
        let metrics = Arc::new(Metrics::new("server-test"));
        let diagnostics = TestDiagnostics::default();
        let server = GrpcServer::new("server-test", &config, metrics.clone())
            .add_service(DiagnosticsServer::new(diagnostics.clone()));
        let bound = auth(server).bind().await.expect("bind the gRPC server");
        let addr = bound.local_addr;
        assert_ne!(addr.port(), 0, "the real port is known before serving");
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(bound.serve(shutdown.clone()));
        App {
            addr,
            metrics,
            diagnostics,
            shutdown,
            served,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("a valid URI")
            .connect()
            .await
            .expect("connect to the gRPC server")
    }

    async fn client(&self) -> DiagnosticsClient<Channel> {
        DiagnosticsClient::new(self.channel().await)
    }

    /// Wait until the handler has been entered `calls` times (a request is then in flight).
    async fn handler_entered(&self, calls: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self
            .diagnostics
            .seen_traces
            .lock()
            .expect("trace log")
            .len()
            < calls
        {
            assert!(Instant::now() < deadline, "the handler was never entered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Cancel the token and wait for `serve` to return, failing if it takes longer than `limit`.
    async fn shut_down(self, limit: Duration) -> Duration {
        let started = Instant::now();
        self.shutdown.cancel();
        tokio::time::timeout(limit, self.served)
            .await
            .expect("serve returns in time")
            .expect("serve does not panic")
            .expect("serve ends cleanly");
        started.elapsed()
    }
}

fn delayed(ms: u64) -> Request<WhoAmIRequest> {
    let mut request = Request::new(WhoAmIRequest {});
    request
        .metadata_mut()
        .insert(DELAY, ms.to_string().parse().expect("ascii"));
    request
}

struct Admin {
    url: String,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_admin(
    metrics: Arc<Metrics>,
    checks: Vec<ReadinessCheck>,
    linger: Duration,
) -> Admin {
    let config = AdminConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        operator_token: None,
    };
    let mut admin = AdminServer::new(&config, metrics.registry()).linger(linger);
    for check in checks {
        admin = admin.readiness(check);
    }
    let bound = admin.bind().await.expect("bind the admin port");
    let url = format!("http://{}", bound.local_addr);
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(bound.serve(shutdown.clone()));
    Admin {
        url,
        shutdown,
        served,
    }
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("the admin port answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

/// A Postgres URL on which nothing listens.
fn closed_pg_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    format!("postgres://keel@127.0.0.1:{port}/postgres")
}

// ---------------------------------------------------------------------------------------------
// Health and reflection

#[tokio::test]
async fn health_reports_serving_for_the_server_and_each_service() {
    let app = App::start(grpc_config()).await;
    let mut health = HealthClient::new(app.channel().await);
    for service in ["", "common.v1.Diagnostics"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(
            reply.status(),
            ServingStatus::Serving,
            "service {service:?}"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.v1.Nothing".into(),
        })
        .await
        .expect_err("an unknown service is not reported");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_exactly_the_served_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = App::start(grpc_config()).await;
    let mut reflection = ServerReflectionClient::new(app.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection call")
        .into_inner();
    let reply = replies
        .message()
        .await
        .expect("a reflection reply")
        .expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("expected a service list, got {reply:?}");
    };
    let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "common.v1.Diagnostics",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"
        ]
    );
}

#[tokio::test]
async fn reflection_answers_v1alpha_clients_too() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let app = App::start(grpc_config()).await;
    let mut reflection = ServerReflectionClient::new(app.channel().await);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("common.v1.Diagnostics".into()),
    ]
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    });
    let mut replies = reflection
        .server_reflection_info(futures::stream::iter(requests))
        .await
        .expect("a v1alpha reflection call")
        .into_inner();
    let reply = replies
        .message()
        .await
        .expect("a reply")
        .expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("expected a service list, got {reply:?}");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "common.v1.Diagnostics"),
        "{list:?}"
    );
    let reply = replies
        .message()
        .await
        .expect("a reply")
        .expect("one message");
    let Some(MessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
        panic!("expected the file declaring the service, got {reply:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Request ids

#[tokio::test]
async fn a_callers_request_id_is_echoed_to_the_handler_and_the_response() {
    let app = App::start(grpc_config()).await;
    let mut request = Request::new(WhoAmIRequest {});
    request
        .metadata_mut()
        .insert("x-request-id", "req-from-caller-42".parse().expect("ascii"));
    let response = app.client().await.who_am_i(request).await.expect("call");
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .map(|v| v.to_str().ok()),
        Some(Some("req-from-caller-42"))
    );
    assert_eq!(response.into_inner().request_id, "req-from-caller-42");
}

#[tokio::test]
async fn a_request_without_a_usable_id_gets_a_fresh_uuid_v7() {
    let app = App::start(grpc_config()).await;
    let mut client = app.client().await;
    let mut oversized = Request::new(WhoAmIRequest {});
    oversized
        .metadata_mut()
        .insert("x-request-id", "x".repeat(200).parse().expect("ascii"));
    for request in [Request::new(WhoAmIRequest {}), oversized] {
        let response = client.who_am_i(request).await.expect("call");
        let echoed = response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("a request id header")
            .to_owned();
        let id = uuid::Uuid::parse_str(&echoed).expect("a UUID");
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(response.into_inner().request_id, echoed);
    }
}

// ---------------------------------------------------------------------------------------------
// Deadline, admission, metrics

#[tokio::test]
async fn a_handler_slower_than_the_request_timeout_gets_deadline_exceeded() {
    let app = App::start(GrpcConfig {
        request_timeout_ms: 200,
        ..grpc_config()
    })
    .await;
    let started = Instant::now();
    let status = app
        .client()
        .await
        .who_am_i(delayed(3_000))
        .await
        .expect_err("the call times out");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at the deadline"
    );
    assert!(
        status.metadata().get("x-request-id").is_some(),
        "refusals carry the request id too"
    );
    let text = app.metrics.encode();
    assert!(
        text.contains(&format!(
            r#"keel_grpc_requests_total{{service="server-test",method="{WHO_AM_I}",code="4"}} 1"#
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_burst_over_the_concurrency_limit_waits_for_slots_and_every_request_succeeds() {
    let app = App::start(GrpcConfig {
        concurrency_limit: 2,
        admission_max_wait_ms: 10_000,
        ..grpc_config()
    })
    .await;
    let client = app.client().await;
    let calls: Vec<_> = (0..24)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.who_am_i(delayed(50)).await })
        })
        .collect();
    for call in calls {
        call.await
            .expect("no panic")
            .expect("a queued request is served, not refused");
    }
    assert_eq!(
        app.diagnostics.max_in_flight.load(Ordering::SeqCst),
        2,
        "never more handlers at once than the limit"
    );
    let text = app.metrics.encode();
    assert!(
        text.contains(r#"keel_grpc_admission_refused_total{service="server-test"} 0"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_request_that_would_wait_past_the_admission_wait_is_refused_with_a_retry_delay() {
    let app = App::start(GrpcConfig {
        concurrency_limit: 1,
        admission_max_wait_ms: 200,
        ..grpc_config()
    })
    .await;
    let mut slow_client = app.client().await;
    let slow = tokio::spawn(async move { slow_client.who_am_i(delayed(2_000)).await });
    app.handler_entered(1).await;

    let mut client = app.client().await;
    let status = client
        .who_am_i(WhoAmIRequest {})
        .await
        .expect_err("no slot frees within the admission wait");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let error = keel_kernel::Error::from_status(&status);
    assert_eq!(
        error.retry_after(),
        Some(Duration::from_secs(1)),
        "{status:?}"
    );
    assert!(status.message().contains("overloaded"), "{status:?}");
    assert!(
        app.diagnostics.seen_traces.lock().expect("trace log").len() == 1,
        "the refused request never reached the handler"
    );
    slow.await
        .expect("no panic")
        .expect("the request holding the slot completes");
    client
        .who_am_i(WhoAmIRequest {})
        .await
        .expect("the slot is free again");
}

#[tokio::test]
async fn a_request_finding_the_admission_queue_full_is_refused_at_once() {
    let app = App::start(GrpcConfig {
        concurrency_limit: 1,
        admission_max_wait_ms: 10_000,
        admission_queue_limit: 1,
        ..grpc_config()
    })
    .await;
    let client = app.client().await;
    let mut holder = client.clone();
    let holding = tokio::spawn(async move { holder.who_am_i(delayed(1_500)).await });
    app.handler_entered(1).await;
    let mut waiter = client.clone();
    let waiting = tokio::spawn(async move { waiter.who_am_i(WhoAmIRequest {}).await });
    // The waiter is queued once the gauge says so.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !app
        .metrics
        .encode()
        .contains(r#"keel_grpc_admission_waiting{service="server-test"} 1"#)
    {
        assert!(Instant::now() < deadline, "the second request never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let status = client
        .clone()
        .who_am_i(WhoAmIRequest {})
        .await
        .expect_err("the queue is full");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        holding.await.expect("no panic").is_ok(),
        "the first request completes"
    );
    waiting
        .await
        .expect("no panic")
        .expect("the queued request is served once the slot frees");
}

#[tokio::test]
async fn requests_are_counted_by_method_and_code_and_served_on_metrics() {
    let issuer = TestIssuer::start().await;
    let verifier = issuer.verifier();
    let app = App::start_with(grpc_config(), |server| server.jwt_auth(verifier)).await;
    let mut client = app.client().await;

    let token = issuer.token(TokenSpec::any_user());
    for _ in 0..2 {
        let mut request = Request::new(WhoAmIRequest {});
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
        let reply = client.who_am_i(request).await.expect("authenticated call");
        assert!(
            !reply.into_inner().subject.is_empty(),
            "the handler sees the claims"
        );
    }
    let refused = client
        .who_am_i(WhoAmIRequest {})
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    // Health stays public behind the auth layer.
    HealthClient::new(app.channel().await)
        .check(HealthCheckRequest::default())
        .await
        .expect("health needs no token");

    let admin = start_admin(app.metrics.clone(), Vec::new(), Duration::ZERO).await;
    let (status, text) = get(&format!("{}/metrics", admin.url)).await;
    assert_eq!(status, 200);
    for (code, count) in [("0", 2), ("16", 1)] {
        let line = format!(
            r#"keel_grpc_requests_total{{service="server-test",method="{WHO_AM_I}",code="{code}"}} {count}"#
        );
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
    assert!(
        text.contains(&format!(
            r#"keel_grpc_request_duration_seconds_count{{service="server-test",method="{WHO_AM_I}",code="0"}} 2"#
        )),
        "{text}"
    );
    assert!(text.contains("keel_outbox_backlog"), "{text}");
}

#[tokio::test]
async fn a_server_without_authentication_refuses_to_bind() {
    let metrics = Arc::new(Metrics::new("server-test"));
    let result = GrpcServer::new("server-test", &grpc_config(), metrics)
        .add_service(DiagnosticsServer::new(TestDiagnostics::default()))
        .bind()
        .await;
    assert!(matches!(result, Err(ServerError::NoAuth)));
}

// ---------------------------------------------------------------------------------------------
// Admin port

#[tokio::test]
async fn readyz_is_503_naming_postgres_when_it_is_unreachable() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy(&closed_pg_url())
        .expect("a lazy pool");
    let metrics = Arc::new(Metrics::new("server-test"));
    let admin = start_admin(
        metrics,
        vec![ReadinessCheck::postgres(pool)],
        Duration::ZERO,
    )
    .await;

    let (status, body) = get(&format!("{}/readyz", admin.url)).await;
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(body["failing"][0]["check"], "postgres", "{body}");
    let (status, _) = get(&format!("{}/healthz", admin.url)).await;
    assert_eq!(status, 200, "liveness does not depend on the database");
}

#[tokio::test]
async fn readyz_is_200_when_postgres_and_nats_are_reachable() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&keel_testkit::stack::admin_url())
        .expect("a lazy pool");
    let nats = keel_testkit::stack::connect_nats(&keel_testkit::stack::shared_nats_url()).await;
    let metrics = Arc::new(Metrics::new("server-test"));
    let checks = vec![ReadinessCheck::postgres(pool), ReadinessCheck::nats(nats)];
    let admin = start_admin(metrics, checks, Duration::ZERO).await;

    let (status, body) = get(&format!("{}/readyz", admin.url)).await;
    assert_eq!(
        status, 200,
        "{body} (is the local stack up? bash scripts/stack.sh up)"
    );
}

#[tokio::test]
async fn readyz_is_503_while_nats_is_down_and_200_once_it_is_back() {
    let mut broker = keel_testkit::stack::TestNats::start().await;
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(broker.url())
        .await
        .expect("connect to the test broker");
    let metrics = Arc::new(Metrics::new("server-test"));
    let admin = start_admin(metrics, vec![ReadinessCheck::nats(client)], Duration::ZERO).await;
    let readyz = format!("{}/readyz", admin.url);
    // The client connects in the background.
    wait_for_status(&readyz, 200).await;

    broker.stop().await;
    wait_for_status(&readyz, 503).await;
    broker.restart().await;
    wait_for_status(&readyz, 200).await;
}

async fn wait_for_status(url: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(url).await;
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} ({body}), want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn at_shutdown_readiness_fails_first_while_the_admin_port_lingers() {
    let metrics = Arc::new(Metrics::new("server-test"));
    let admin = start_admin(metrics, Vec::new(), Duration::from_millis(700)).await;
    assert_eq!(get(&format!("{}/readyz", admin.url)).await.0, 200);

    admin.shutdown.cancel();
    let (status, body) = get(&format!("{}/readyz", admin.url)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("shutting down"), "{body}");
    assert_eq!(get(&format!("{}/healthz", admin.url)).await.0, 200);
    assert_eq!(get(&format!("{}/metrics", admin.url)).await.0, 200);

    tokio::time::timeout(Duration::from_secs(3), admin.served)
        .await
        .expect("the admin port stops after lingering")
        .expect("no panic")
        .expect("a clean stop");
    assert!(
        reqwest::get(format!("{}/healthz", admin.url))
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_complete_then_refuses_new_connections() {
    let app = App::start(grpc_config()).await;
    let addr = app.addr;
    let mut client = app.client().await;
    let in_flight = tokio::spawn(async move { client.who_am_i(delayed(600)).await });
    app.handler_entered(1).await;

    let took = app.shut_down(Duration::from_secs(4)).await;
    in_flight
        .await
        .expect("no panic")
        .expect("the in-flight request completes normally");
    assert!(
        took >= Duration::from_millis(200),
        "serve waited for the request ({took:?})"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn shutdown_reports_not_serving_and_aborts_what_outlives_the_grace_period() {
    let app = App::start(GrpcConfig {
        shutdown_grace_ms: 300,
        ..grpc_config()
    })
    .await;
    let mut watch = HealthClient::new(app.channel().await)
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch health")
        .into_inner();
    let first = watch
        .message()
        .await
        .expect("a status")
        .expect("one message");
    assert_eq!(first.status(), ServingStatus::Serving);

    let mut client = app.client().await;
    let stuck = tokio::spawn(async move { client.who_am_i(delayed(10_000)).await });
    app.handler_entered(1).await;

    let took = app.shut_down(Duration::from_secs(4)).await;
    let next = watch
        .message()
        .await
        .expect("a status")
        .expect("one message");
    assert_eq!(next.status(), ServingStatus::NotServing);
    let status = stuck
        .await
        .expect("no panic")
        .expect_err("aborted at the end of the grace period");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        took < Duration::from_secs(3),
        "serve returned after the grace ({took:?})"
    );
}

#[tokio::test]
async fn the_shutdown_signal_fires_on_sigterm() {
    let mut signal = Box::pin(shutdown_signal());
    // The first poll installs the handlers, so the SIGTERM below cannot kill the test process.
    assert!(futures::poll!(&mut signal).is_pending());
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    tokio::time::timeout(Duration::from_secs(5), signal)
        .await
        .expect("the signal future completes on SIGTERM");
}

// ---------------------------------------------------------------------------------------------
// Trace context

fn remote_parent() -> opentelemetry::Context {
    telemetry::context_from_map(&HashMap::from([(
        "traceparent".to_owned(),
        TRACEPARENT.to_owned(),
    )]))
}

fn trace_id_of(map: &HashMap<String, String>) -> Option<String> {
    let context = telemetry::context_from_map(map);
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[tokio::test]
async fn a_callers_trace_continues_in_the_handler_over_grpc_metadata() {
    let app = App::start(grpc_config()).await;
    let mut client =
        DiagnosticsClient::with_interceptor(app.channel().await, telemetry::propagate_grpc);
    let caller = tracing::info_span!("caller");
    telemetry::set_parent(&caller, remote_parent());
    async {
        // Injected by the interceptor from the current span.
        let mut sent = tonic::metadata::MetadataMap::new();
        telemetry::inject_grpc(&mut sent);
        let traceparent = sent.get("traceparent").expect("traceparent injected");
        assert!(
            traceparent.to_str().expect("ascii").contains(TRACE_ID),
            "{traceparent:?}"
        );
        client.who_am_i(WhoAmIRequest {}).await.expect("call");
    }
    .instrument(caller)
    .await;

    let seen = app
        .diagnostics
        .seen_traces
        .lock()
        .expect("trace log")
        .clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(trace_id_of(&seen[0]).as_deref(), Some(TRACE_ID), "{seen:?}");
    assert!(
        !seen[0]["traceparent"].contains("00f067aa0ba902b7"),
        "the handler runs in a span of its own, a child of the caller's"
    );
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_new_trace() {
    let app = App::start(grpc_config()).await;
    app.client()
        .await
        .who_am_i(WhoAmIRequest {})
        .await
        .expect("call");
    let seen = app
        .diagnostics
        .seen_traces
        .lock()
        .expect("trace log")
        .clone();
    let trace = trace_id_of(&seen[0]).expect("the server span has a trace");
    assert_ne!(trace, TRACE_ID);
}

#[tokio::test]
async fn trace_context_round_trips_through_nats_headers() {
    init_telemetry();
    let nats = keel_testkit::stack::connect_nats(&keel_testkit::stack::shared_nats_url()).await;
    let subject = format!("test.trace.{}", uuid::Uuid::new_v4().simple());
    let mut subscription = nats.subscribe(subject.clone()).await.expect("subscribe");

    let producer = tracing::info_span!("producer");
    telemetry::set_parent(&producer, remote_parent());
    let mut headers = async_nats::HeaderMap::new();
    producer.in_scope(|| telemetry::inject_nats(&mut headers));
    nats.publish_with_headers(subject, headers, "hello".into())
        .await
        .expect("publish");

    let message = tokio::time::timeout(
        Duration::from_secs(5),
        futures::StreamExt::next(&mut subscription),
    )
    .await
    .expect("the message arrives")
    .expect("a message");
    let received = message.headers.as_ref().expect("headers travel");
    let context = telemetry::extract_nats(received);
    assert_eq!(
        context.span().span_context().trace_id().to_string(),
        TRACE_ID
    );

    // A consumer's span continues the producer's trace.
    let consumer = tracing::info_span!("consumer");
    telemetry::set_parent(&consumer, context);
    let map = consumer.in_scope(telemetry::current_context_map);
    assert_eq!(trace_id_of(&map).as_deref(), Some(TRACE_ID));
}

#[tokio::test]
async fn the_context_map_stored_with_an_outbox_row_restores_the_trace() {
    init_telemetry();
    let writer = tracing::info_span!("writer");
    telemetry::set_parent(&writer, remote_parent());
    let stored = writer.in_scope(telemetry::current_context_map);
    assert!(stored.contains_key("traceparent"), "{stored:?}");

    let relay = tracing::info_span!("relay");
    telemetry::set_parent(&relay, telemetry::context_from_map(&stored));
    let mut headers = async_nats::HeaderMap::new();
    relay.in_scope(|| telemetry::inject_nats(&mut headers));
    let published = telemetry::extract_nats(&headers);
    assert_eq!(
        published.span().span_context().trace_id().to_string(),
        TRACE_ID
    );

    assert!(
        telemetry::current_context_map().is_empty(),
        "outside any span there is nothing to store"
    );
}

// ---------------------------------------------------------------------------------------------
// The admin port's operator endpoints

/// An admin port serving dead letters of a fresh database, with operator secret `secret`.
async fn start_operator_admin(issuer: &TestIssuer, secret: &str) -> (Admin, sqlx::PgPool) {
    let database = keel_testkit::TestDatabase::create().await;
    let config = database.provision("ops").await;
    let pool = keel_kernel::db::connect("ops", &config, Duration::from_secs(5))
        .await
        .expect("connect");
    keel_kernel::db::migrate(&pool, &keel_kernel::db::no_migrations())
        .await
        .expect("kernel migrations");
    sqlx::query(
        "INSERT INTO dead_letters (consumer, event_id, subject, envelope, error, deliveries) \
         VALUES ('ops-demo', $1, 'events.demo.note.created', '\\x00', 'boom', 5)",
    )
    .bind(uuid::Uuid::now_v7())
    .execute(&pool)
    .await
    .expect("a dead letter");
    let access = keel_kernel::admin::OperatorAccess::new(
        Some(secret.to_owned().into()),
        Some(issuer.verifier()),
    );
    let admin_config = AdminConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        operator_token: None,
    };
    let bound = AdminServer::new(&admin_config, Arc::new(Metrics::new("ops")).registry())
        .dead_letters(pool.clone(), access)
        .bind()
        .await
        .expect("bind the admin port");
    let url = format!("http://{}", bound.local_addr);
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(bound.serve(shutdown.clone()));
    (
        Admin {
            url,
            shutdown,
            served,
        },
        pool,
    )
}

async fn call(method: reqwest::Method, url: &str, bearer: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request
        .send()
        .await
        .expect("the admin port answers")
        .status()
        .as_u16()
}

async fn replay_requested(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar("SELECT bool_or(replay_requested_at IS NOT NULL) FROM dead_letters")
        .fetch_one(pool)
        .await
        .expect("query")
}

#[tokio::test]
async fn an_anonymous_caller_can_neither_list_nor_replay_dead_letters() {
    let issuer = TestIssuer::start().await;
    let (admin, pool) = start_operator_admin(&issuer, "s3cret-operator").await;
    let list = format!("{}/dead-letters", admin.url);
    let replay = format!("{}/dead-letters/1/replay", admin.url);
    assert_eq!(call(reqwest::Method::GET, &list, None).await, 401);
    assert_eq!(call(reqwest::Method::GET, &list, Some("guess")).await, 401);
    assert_eq!(call(reqwest::Method::POST, &replay, None).await, 401);
    assert_eq!(
        call(reqwest::Method::POST, &replay, Some("s3cret-operatoR")).await,
        401
    );
    assert!(
        !replay_requested(&pool).await,
        "a refused replay must not be requested"
    );
    // Probes and scrapers stay open.
    assert_eq!(
        call(
            reqwest::Method::GET,
            &format!("{}/healthz", admin.url),
            None
        )
        .await,
        200
    );
    assert_eq!(
        call(
            reqwest::Method::GET,
            &format!("{}/metrics", admin.url),
            None
        )
        .await,
        200
    );
}

#[tokio::test]
async fn a_tenant_owners_token_cannot_replay_dead_letters() {
    let issuer = TestIssuer::start().await;
    let (admin, pool) = start_operator_admin(&issuer, "s3cret-operator").await;
    // An owner holds `*`, but for their tenant only: no platform rights.
    let owner = issuer.token(
        TokenSpec::any_user()
            .tenant(keel_kernel::TenantId::new())
            .perm("*"),
    );
    let replay = format!("{}/dead-letters/1/replay", admin.url);
    assert_eq!(
        call(reqwest::Method::POST, &replay, Some(&owner)).await,
        403
    );
    assert!(!replay_requested(&pool).await);
}

#[tokio::test]
async fn the_operator_secret_or_a_platform_admin_token_lists_and_replays_dead_letters() {
    let issuer = TestIssuer::start().await;
    let (admin, pool) = start_operator_admin(&issuer, "s3cret-operator").await;
    let list = format!("{}/dead-letters", admin.url);
    assert_eq!(
        call(reqwest::Method::GET, &list, Some("s3cret-operator")).await,
        200
    );
    let platform =
        issuer.token(TokenSpec::any_user().perm(keel_kernel::admin::OPERATOR_PERMISSION));
    assert_eq!(
        call(reqwest::Method::GET, &list, Some(&platform)).await,
        200
    );
    let id: i64 = sqlx::query_scalar("SELECT id FROM dead_letters")
        .fetch_one(&pool)
        .await
        .expect("the dead letter");
    let replay = format!("{}/dead-letters/{id}/replay", admin.url);
    assert_eq!(
        call(reqwest::Method::POST, &replay, Some(&platform)).await,
        202
    );
    assert!(replay_requested(&pool).await);
}
