//! The gateway's own endpoints, answered before any route: the probes and `/metrics` (the
//! kernel's admin endpoints, [`keel_kernel::admin`]), `/openapi.json`, `/docs` and the pages behind the emails' links.
//!
//! With an admin listener, the probes and `/metrics` are served there by the kernel's
//! [`AdminServer`]; the public listener still answers the probes (load balancers ask there) but
//! not `/metrics`. Without one, the public listener answers all of them. Either way the answers
//! come from the same kernel router, so they cannot drift apart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use keel_kernel::JwtVerifier;
use keel_kernel::admin::{AdminServer, ReadinessCheck};
use keel_kernel::config::AdminConfig;
use keel_kernel::metrics::MetricsRegistry;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::problem::Problem;
use crate::{docs, pages};

/// The probes, metrics and documentation, built once at start.
pub struct Endpoints {
    /// The kernel's `/healthz`, `/readyz` and `/metrics`.
    admin: axum::Router,
    registry: Arc<MetricsRegistry>,
    readiness: ReadinessCheck,
    shutdown: CancellationToken,
    openapi: Bytes,
    /// Without an admin listener, `/metrics` is served on the public one.
    metrics_here: bool,
}

impl Endpoints {
    pub fn new(
        registry: Arc<MetricsRegistry>,
        jwks: Arc<JwksReadiness>,
        openapi: Bytes,
        metrics_here: bool,
    ) -> Endpoints {
        let shutdown = CancellationToken::new();
        let readiness = jwks.check();
        // Only the router is used, never its listener: the address does not matter.
        let admin = AdminServer::new(&AdminConfig::default(), registry.clone())
            .readiness(readiness.clone())
            .router(shutdown.clone());
        Endpoints {
            admin,
            registry,
            readiness,
            shutdown,
            openapi,
            metrics_here,
        }
    }

    /// `/readyz` turns 503 from now on, on every listener.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// The token that [`Self::begin_shutdown`] cancels.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The admin listener: the kernel's admin server, with the documentation too.
    pub fn admin_server(&self, config: &AdminConfig) -> AdminServer {
        let openapi = self.openapi.clone();
        let docs = axum::Router::new()
            .route(
                "/openapi.json",
                axum::routing::get(move || {
                    let openapi = openapi.clone();
                    async move { openapi_response(openapi) }
                }),
            )
            .route(
                "/docs",
                axum::routing::get(|| async { docs::asset("/docs") }),
            )
            .route(
                "/docs/",
                axum::routing::get(|| async { docs::asset("/docs/") }),
            )
            .route(
                docs::SCRIPT_PATH,
                axum::routing::get(|| async { docs::asset(docs::SCRIPT_PATH) }),
            )
            .route(
                docs::STYLE_PATH,
                axum::routing::get(|| async { docs::asset(docs::STYLE_PATH) }),
            );
        AdminServer::new(config, self.registry.clone())
            .readiness(self.readiness.clone())
            .routes(docs)
    }

    /// The answer to one of the gateway's own paths on the public listener, or `None` for every
    /// other path.
    pub async fn answer(
        &self,
        method: &Method,
        path: &str,
        request_id: &HeaderValue,
    ) -> Option<Response> {
        let known = matches!(
            path,
            "/healthz"
                | "/readyz"
                | "/openapi.json"
                | "/docs"
                | "/docs/"
                | docs::SCRIPT_PATH
                | docs::STYLE_PATH
        ) || pages::serves(path)
            || (self.metrics_here && path == "/metrics");
        if !known {
            return None;
        }
        if method != Method::GET && method != Method::HEAD {
            let problem = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                keel_kernel::ErrorCode::Validation,
                format!("{method} is not allowed here; use GET"),
            )
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(problem.into_response(request_id));
        }
        Some(match path {
            "/healthz" | "/readyz" | "/metrics" => self.admin(method, path, request_id).await,
            "/openapi.json" => openapi_response(self.openapi.clone()),
            _ if pages::serves(path) => pages::asset(path),
            _ => docs::asset(path),
        })
    }

    async fn admin(&self, method: &Method, path: &str, request_id: &HeaderValue) -> Response {
        let request = match http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
        {
            Ok(request) => request,
            // Unreachable: `path` is one of the fixed paths above.
            Err(_) => return Problem::internal().into_response(request_id),
        };
        match self.admin.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

fn openapi_response(openapi: Bytes) -> Response {
    let mut response = Response::new(Body::from(openapi));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Ready once identity's signing keys have been loaded: before that, every authenticated request
/// would fail. A failed start-up load is retried by `/readyz`, at most once a second so probes
/// cannot hammer identity.
pub struct JwksReadiness {
    verifier: JwtVerifier,
    loaded: AtomicBool,
    last_attempt: Mutex<Option<Instant>>,
}

impl JwksReadiness {
    pub fn new(verifier: JwtVerifier) -> JwksReadiness {
        JwksReadiness {
            verifier,
            loaded: AtomicBool::new(false),
            last_attempt: Mutex::new(None),
        }
    }

    /// Load the keys now (start-up warm-up).
    pub async fn warm_up(&self) {
        if self.verifier.refresh().await.is_ok() {
            self.loaded.store(true, Ordering::SeqCst);
        }
    }

    /// The `jwks` readiness check.
    pub fn check(self: &Arc<Self>) -> ReadinessCheck {
        let jwks = self.clone();
        ReadinessCheck::new("jwks", move || {
            let jwks = jwks.clone();
            async move { jwks.loaded_or_retry().await }
        })
    }

    async fn loaded_or_retry(&self) -> Result<(), String> {
        if self.loaded.load(Ordering::SeqCst) {
            return Ok(());
        }
        let due = {
            let mut last = self
                .last_attempt
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let due = last.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if !due {
            return Err("signing keys not loaded yet".into());
        }
        if self.verifier.refresh().await.is_err() {
            return Err("signing keys cannot be fetched".into());
        }
        self.loaded.store(true, Ordering::SeqCst);
        Ok(())
    }
}
