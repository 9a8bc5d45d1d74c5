//! The gRPC server every service runs: one tower stack (request id, trace span, metrics,
//! admission (a concurrency limit with a bounded wait), deadline, authentication), grpc.health.v1,
//! reflection v1 and v1alpha, and a
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

mod admission;
mod deadline;
mod metrics;
mod request_id;
mod shutdown;
mod span;
mod status;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::util::BoxCloneService;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};

#[cfg(doc)]
use crate::auth::PublicPaths;
use crate::auth::{AuthLayer, JwtVerifier};
use crate::config::GrpcConfig;
use crate::metrics::Metrics;

use self::admission::{AdmissionLayer, AdmissionLimits};
use self::deadline::DeadlineLayer;
use self::metrics::MetricsLayer;
use self::request_id::RequestIdLayer;
pub use self::request_id::{REQUEST_ID_HEADER, RequestId, request_id};
pub use self::shutdown::shutdown_signal;
use self::span::TraceLayer;
use self::status::StatusLayer;

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
const REFLECTION_SERVICES: &[&str] = &[
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

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
        // Only what this process serves is advertised, not every service in the shared proto set.
        // Both protocol versions: grpcurl and grpcui speak v1, older tools (Postman, some IDEs) only
        // v1alpha.
        let reflection_builder = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(keel_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
            for name in names
                .iter()
                .chain(&[HEALTH_SERVICE])
                .chain(REFLECTION_SERVICES)
            {
                builder = builder.with_service_name(*name);
            }
            builder
        };
        let reflection = reflection_builder().build_v1()?;
        let reflection_v1alpha = reflection_builder().build_v1alpha()?;

        let (health, health_service) = tonic_health::server::health_reporter();
        names.push(""); // the whole server, which is what most probes ask about
        for name in &names {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        let mut routes = self.routes;
        routes
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha);

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
        // - admission: at most `concurrency_limit` requests at once; above it a request waits for a
        //   slot for a bounded time (never past its own deadline) and only then is refused with
        //   UNAVAILABLE and a retry delay, so a burst queues briefly instead of failing;
        // - the deadline inside the limit, so it bounds work, not waiting; and above auth, so a
        //   slow JWKS fetch is bounded too. It also aborts requests still running after the
        //   shutdown grace period;
        // - auth innermost, just before the handlers, after everything that is cheaper.
        let stack = ServiceBuilder::new()
            .layer(RequestIdLayer)
            .layer(TraceLayer)
            .layer(MetricsLayer::new(self.metrics.clone()))
            .layer(StatusLayer::new(Arc::from(self.service.as_str())))
            .layer(AdmissionLayer::new(
                AdmissionLimits {
                    concurrency: self.config.concurrency_limit,
                    max_wait: Duration::from_millis(self.config.admission_max_wait_ms),
                    queue_limit: self.config.admission_queue_limit,
                },
                &self.metrics,
            ))
            .layer(DeadlineLayer::new(
                Duration::from_millis(self.config.request_timeout_ms),
                abort.clone(),
            ))
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
