//! The gRPC server every service runs: one tower stack (request id, trace span, metrics, load
//! shedding, concurrency limit, deadline, authentication), grpc.health.v1, reflection v1, and a
//! graceful shutdown that drains in-flight requests within `grpc.shutdown_grace_ms`.
//!
//! ```ignore
//! let server = GrpcServer::new(&config.service, &config.grpc, metrics.clone())
//!     .jwt_auth(JwtVerifier::new(&config.auth)?)
//!     .add_service(InvoicesServer::new(handlers))
//!     .bind()
//!     .await?;
//! tracing::info!(addr = %server.local_addr, "listening");
//! server.serve(shutdown.clone()).await?;
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::util::BoxCloneService;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};
use tracing::Instrument;

#[cfg(doc)]
use crate::auth::PublicPaths;
use crate::auth::{AuthLayer, JwtVerifier};
use crate::config::GrpcConfig;
use crate::metrics::Metrics;
use crate::telemetry;

/// The header carrying a request's id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
const REFLECTION_SERVICE: &str = "grpc.reflection.v1.ServerReflection";

/// After the grace period, aborted requests get this long to flush their UNAVAILABLE status.
const ABORT_FLUSH: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("config key `grpc.listen`: cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error(
        "the gRPC server has no authentication: call `auth(..)` (or `allow_unauthenticated()` in tests)"
    )]
    NoAuth,
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

/// The service (routes, then auth) below the kernel's layers, type-erased so the builder is not
/// generic over whichever auth layer it was given.
type Inner = BoxCloneService<Request<Body>, Response<Body>, BoxError>;
type AuthFn = Arc<dyn Fn(Routes) -> Inner + Send + Sync>;

enum Auth {
    Missing,
    Disabled,
    Layer(AuthFn),
}

/// Builds a service's gRPC server. Fails closed: without `auth(..)` it refuses to bind.
pub struct GrpcServer {
    service: String,
    config: GrpcConfig,
    metrics: Arc<Metrics>,
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    auth: Auth,
}

impl GrpcServer {
    /// `service` is the error domain (see [`crate::Error::into_status`]).
    pub fn new(service: &str, config: &GrpcConfig, metrics: Arc<Metrics>) -> GrpcServer {
        GrpcServer {
            service: service.to_owned(),
            config: config.clone(),
            metrics,
            routes: RoutesBuilder::default(),
            names: Vec::new(),
            auth: Auth::Missing,
        }
    }

    /// Serve a generated tonic service; health reports it SERVING once bound.
    pub fn add_service<S>(mut self, service: S) -> GrpcServer
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self.names.push(S::NAME);
        self
    }

    /// Verify bearer tokens with `verifier`; health and reflection stay public
    /// ([`PublicPaths::standard`]). For more public methods, build the layer and use [`Self::auth`].
    pub fn jwt_auth(self, verifier: JwtVerifier) -> GrpcServer {
        let layer = AuthLayer::new(verifier, self.service.clone());
        self.auth(layer)
    }

    /// The authentication layer, run innermost, just before the handlers (see [`BoundServer::serve`]
    /// for why). It must let health and reflection through, as [`AuthLayer`] does by default.
    pub fn auth<L, B>(mut self, layer: L) -> GrpcServer
    where
        L: Layer<Routes> + Send + Sync + 'static,
        L::Service: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
        <L::Service as Service<Request<Body>>>::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.auth = Auth::Layer(Arc::new(move |routes| {
            BoxCloneService::new(
                layer
                    .layer(routes)
                    .map_response(|response| response.map(Body::new))
                    .map_err(Into::into),
            )
        }));
        self
    }

    /// Serve without authentication: for kernel tests and purely internal tooling only.
    pub fn allow_unauthenticated(mut self) -> GrpcServer {
        self.auth = Auth::Disabled;
        self
    }

    /// Bind `grpc.listen` (port 0 picks a free port) and prepare health and reflection. Nothing is
    /// served until [`BoundServer::serve`].
    pub async fn bind(self) -> Result<BoundServer, ServerError> {
        let auth: AuthFn = match self.auth {
            Auth::Missing => return Err(ServerError::NoAuth),
            Auth::Disabled => Arc::new(|routes: Routes| {
                BoxCloneService::new(ServiceExt::<Request<Body>>::map_err(
                    routes,
                    |never: Infallible| match never {},
                ))
            }),
            Auth::Layer(auth) => auth,
        };
        let addr = self.config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;

        let mut names = self.names;
        let mut reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(keel_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        // Only what this process serves is advertised, not every service in the shared proto set.
        for name in names.iter().chain(&[HEALTH_SERVICE, REFLECTION_SERVICE]) {
            reflection = reflection.with_service_name(*name);
        }
        let reflection = reflection.build_v1()?;

        let (health, health_service) = tonic_health::server::health_reporter();
        names.push(""); // the whole server, which is what most probes ask about
        for name in &names {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        let mut routes = self.routes;
        routes.add_service(health_service).add_service(reflection);

        Ok(BoundServer {
            local_addr,
            listener,
            routes: routes.routes(),
            auth,
            health,
            names,
            service: self.service,
            config: self.config,
            metrics: self.metrics,
        })
    }
}

/// A bound, not yet serving, gRPC server.
pub struct BoundServer {
    /// The address actually bound (the real port when `grpc.listen` asked for port 0).
    pub local_addr: SocketAddr,
    listener: TcpListener,
    routes: Routes,
    auth: AuthFn,
    health: HealthReporter,
    names: Vec<&'static str>,
    service: String,
    config: GrpcConfig,
    metrics: Arc<Metrics>,
}

impl BoundServer {
    /// The health reporter, for a service that wants to report NOT_SERVING on its own terms.
    pub fn health_reporter(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Serve until `shutdown` is cancelled; then report NOT_SERVING, stop accepting, let in-flight
    /// requests finish for up to `grpc.shutdown_grace_ms`, abort the rest with UNAVAILABLE, return.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        let grace = Duration::from_millis(self.config.shutdown_grace_ms);
        let abort = CancellationToken::new();

        // Outermost first. Each layer sees what the layers above it established:
        // - request id first, so the span, the logs, every response (even a rejection by a layer
        //   below) and the handler all carry the same id;
        // - the trace span next, so everything below logs inside it, with the caller's trace as
        //   parent; the auth layer records tenant_id/user_id on it;
        // - metrics above every layer that can reject, so shed, timed-out and unauthenticated
        //   requests are counted with the status the client saw;
        // - errors to statuses right below metrics: the layers under it fail with errors, which
        //   must reach clients (and metrics) as gRPC statuses, never as broken streams;
        // - load shedding around the concurrency limit: when all permits are taken a request is
        //   refused at once (UNAVAILABLE) instead of queueing behind the slow ones;
        // - the deadline inside the limit, so it bounds work, not waiting; and above auth, so a
        //   slow JWKS fetch is bounded too. It also aborts requests still running after the
        //   shutdown grace period;
        // - auth innermost, just before the handlers, after everything that is cheaper.
        let stack = ServiceBuilder::new()
            .layer(RequestIdLayer)
            .layer(TraceLayer)
            .layer(MetricsLayer {
                metrics: self.metrics.clone(),
            })
            .layer(StatusLayer {
                domain: Arc::from(self.service.as_str()),
            })
            .load_shed()
            .concurrency_limit(self.config.concurrency_limit.max(1))
            .layer(DeadlineLayer {
                timeout: Duration::from_millis(self.config.request_timeout_ms),
                abort: abort.clone(),
            })
            .layer(tower::layer::layer_fn({
                let auth = self.auth.clone();
                move |routes: Routes| auth(routes)
            }));

        let draining = {
            let shutdown = shutdown.clone();
            let health = self.health.clone();
            let names = self.names.clone();
            async move {
                shutdown.cancelled().await;
                for name in names {
                    health
                        .set_service_status(name, ServingStatus::NotServing)
                        .await;
                }
                tracing::info!("shutting down: draining in-flight gRPC requests");
            }
        };
        let incoming =
            tonic::transport::server::TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let server = tonic::transport::Server::builder()
            .layer(stack)
            .add_routes(self.routes)
            .serve_with_incoming_shutdown(incoming, draining);
        tokio::pin!(server);

        let grace_over = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = &mut server => return result.map_err(ServerError::Serve),
            () = grace_over => {}
        }
        tracing::warn!(
            grace_ms = self.config.shutdown_grace_ms,
            "gRPC requests outlived the shutdown grace period; aborting them"
        );
        abort.cancel();
        match tokio::time::timeout(ABORT_FLUSH, &mut server).await {
            Ok(result) => result.map_err(ServerError::Serve),
            // Connections that still hang on are dropped with the runtime.
            Err(_) => Ok(()),
        }
    }
}

/// Completes on SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C). Typical use:
/// `tokio::spawn(async move { shutdown_signal().await; token.cancel() })`.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

// ---------------------------------------------------------------------------------------------
// Request id
// ---------------------------------------------------------------------------------------------

/// The request's id, in the request's extensions: `request.extensions().get::<RequestId>()`.
/// Taken from the caller's `x-request-id` when it is sane, else a new UUIDv7.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accept a caller's id only if it is short printable ASCII: it is logged and echoed.
    fn from_header(value: &HeaderValue) -> Option<RequestId> {
        let bytes = value.as_bytes();
        let sane =
            !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(u8::is_ascii_graphic);
        // Printable ASCII is always valid UTF-8.
        sane.then(|| RequestId(String::from_utf8_lossy(bytes).into_owned()))
    }

    fn generate() -> RequestId {
        RequestId(uuid::Uuid::now_v7().to_string())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a request, from a handler.
pub fn request_id<T>(request: &tonic::Request<T>) -> Option<&RequestId> {
    request.extensions().get::<RequestId>()
}

#[derive(Clone, Copy)]
struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

#[derive(Clone)]
struct RequestIdService<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(RequestId::from_header)
            .unwrap_or_else(RequestId::generate);
        // Valid by construction: a UUID or printable ASCII.
        let header = HeaderValue::from_str(id.as_str()).ok();
        if let Some(header) = &header {
            request
                .headers_mut()
                .insert(REQUEST_ID_HEADER, header.clone());
        }
        request.extensions_mut().insert(id);
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            if let Some(header) = header {
                response.headers_mut().insert(REQUEST_ID_HEADER, header);
            }
            Ok(response)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Trace span
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

#[derive(Clone)]
struct TraceService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for TraceService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.uri().path();
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(RequestId::as_str)
            .unwrap_or_default();
        let span = tracing::info_span!(
            "grpc.request",
            otel.name = method,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = method,
            request_id,
            tenant_id = tracing::field::Empty,
            user_id = tracing::field::Empty,
            grpc.code = tracing::field::Empty,
        );
        telemetry::set_parent(&span, telemetry::extract_grpc(request.headers()));
        // Entered for `call` too: layers below may do their work (and record on the span) here.
        let _entered = span.enter();
        self.inner.call(request).instrument(span.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics (and the one log line per request)
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    /// The status of a gRPC response is in its headers when it failed before sending anything
    /// ("trailers-only"), else in the trailers after the body, so a streaming call is measured
    /// until its last message. A call dropped before its status (the client cancelled or its
    /// own deadline passed) is counted as CANCELLED.
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut outcome = Outcome {
            metrics: self.metrics.clone(),
            method: request.uri().path().to_owned(),
            started: Instant::now(),
            span: tracing::Span::current(),
            done: false,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = match response.await {
                Ok(response) => response,
                Err(err) => {
                    outcome.finish(tonic::Code::Unknown);
                    return Err(err);
                }
            };
            if let Some(code) = grpc_code(response.headers()) {
                outcome.finish(code);
                return Ok(response);
            }
            if http_body::Body::is_end_stream(response.body()) {
                // No status anywhere: a broken response, which gRPC clients report as UNKNOWN.
                outcome.finish(tonic::Code::Unknown);
                return Ok(response);
            }
            Ok(response.map(|body| Body::new(MeteredBody { body, outcome })))
        })
    }
}

fn grpc_code(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|value| tonic::Code::from_bytes(value.as_bytes()))
}

/// Records one request's code and latency exactly once: when its status is known, or on drop.
struct Outcome {
    metrics: Arc<Metrics>,
    method: String,
    started: Instant,
    span: tracing::Span,
    done: bool,
}

impl Outcome {
    fn finish(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        // Unknown paths (scanners, typos) would each grow a new series; they share one.
        let method = if code == tonic::Code::Unimplemented {
            "unknown"
        } else {
            self.method.as_str()
        };
        self.metrics
            .observe_grpc(method, code, elapsed.as_secs_f64());
        self.span.record("grpc.code", code as i32);
        let _entered = self.span.enter();
        // Microsecond precision is plenty for a log line.
        let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1_000.0;
        if self.method.starts_with("/grpc.health.v1.Health/") {
            // Probes every few seconds would drown the log.
            tracing::debug!(grpc.code = code as i32, latency_ms, "request finished");
        } else {
            tracing::info!(grpc.code = code as i32, latency_ms, "request finished");
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

/// A response body that records the outcome when the trailers go by.
struct MeteredBody {
    body: Body,
    outcome: Outcome,
}

impl http_body::Body for MeteredBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.outcome
                        .finish(grpc_code(trailers).unwrap_or(tonic::Code::Unknown));
                }
            }
            Some(Err(status)) => this.outcome.finish(status.code()),
            None => this.outcome.finish(tonic::Code::Unknown),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

// ---------------------------------------------------------------------------------------------
// Errors to statuses
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct StatusLayer {
    domain: Arc<str>,
}

impl<S> Layer<S> for StatusLayer {
    type Service = StatusService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        StatusService {
            inner,
            domain: self.domain.clone(),
            not_ready: None,
        }
    }
}

struct StatusService<S> {
    inner: S,
    domain: Arc<str>,
    /// A `poll_ready` failure, answered as a status by the next `call`.
    not_ready: Option<BoxError>,
}

impl<S: Clone> Clone for StatusService<S> {
    fn clone(&self) -> Self {
        StatusService {
            inner: self.inner.clone(),
            domain: self.domain.clone(),
            not_ready: None,
        }
    }
}

impl<S, B, RB> Service<Request<B>> for StatusService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.not_ready.is_none()
            && let Err(err) = ready!(self.inner.poll_ready(cx))
        {
            self.not_ready = Some(err.into());
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let domain = self.domain.clone();
        if let Some(err) = self.not_ready.take() {
            let response = error_response(&domain, err);
            return Box::pin(async move { Ok(response) });
        }
        let response = self.inner.call(request);
        Box::pin(async move {
            match response.await {
                Ok(response) => Ok(response.map(Body::new)),
                Err(err) => Ok(error_response(&domain, err.into())),
            }
        })
    }
}

/// Every error a layer can raise, as the status a client should see. Unknown errors are
/// INTERNAL, logged once by `Error::internal` and never described to the client.
fn error_response(domain: &str, err: BoxError) -> Response<Body> {
    let status = if err.is::<tower::timeout::error::Elapsed>() {
        tonic::Status::deadline_exceeded("the request took longer than the server allows")
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        crate::Error::unavailable("the server is overloaded, retry later").into_status_in(domain)
    } else if err.is::<Aborted>() {
        crate::Error::unavailable("the server is shutting down, retry").into_status_in(domain)
    } else {
        match err.downcast::<tonic::Status>() {
            Ok(status) => *status,
            Err(err) => match err.downcast::<crate::Error>() {
                Ok(error) => error.into_status_in(domain),
                Err(err) => crate::Error::internal(anyhow::anyhow!(err)).into_status_in(domain),
            },
        }
    };
    status.into_http()
}

// ---------------------------------------------------------------------------------------------
// Deadline
// ---------------------------------------------------------------------------------------------

/// A request still running when shutdown's grace period ends.
#[derive(Debug, thiserror::Error)]
#[error("aborted at shutdown")]
struct Aborted;

#[derive(Clone)]
struct DeadlineLayer {
    timeout: Duration,
    abort: CancellationToken,
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            inner,
            timeout: self.timeout,
            abort: self.abort.clone(),
        }
    }
}

#[derive(Clone)]
struct DeadlineService<S> {
    inner: S,
    timeout: Duration,
    abort: CancellationToken,
}

impl<S, B> Service<Request<B>> for DeadlineService<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    /// Bounds the time to the response headers: for a streaming response, not the stream. The
    /// caller's own `grpc-timeout` is enforced by tonic outside this stack.
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        let timeout = self.timeout;
        let abort = self.abort.clone();
        Box::pin(async move {
            tokio::select! {
                response = response => response.map_err(Into::into),
                () = tokio::time::sleep(timeout) => Err(tower::timeout::error::Elapsed::new().into()),
                () = abort.cancelled() => Err(Aborted.into()),
            }
        })
    }
}
