//! The admin HTTP port, apart from the gRPC port so probes and scrapes never compete with
//! traffic and never pass through authentication:
//!
//! - `/healthz`: 200 while the process can answer at all (liveness);
//! - `/readyz`: 200 only when every readiness check passes, else 503 with the failing checks as
//!   JSON; once shutdown starts it is 503 before anything else stops, so the load balancer
//!   drains this instance while it still serves;
//! - `/metrics`: the process's Prometheus registry (whatever is registered on it: the kernel's
//!   gRPC series, or the edge gateway's HTTP series);
//! - `/dead-letters` (GET) and `/dead-letters/{id}/replay` (POST): the operator's view of events a
//!   consumer gave up on, when the service consumes events;
//! - whatever a service adds with [`AdminServer::routes`] (identity's JWKS).
//!
//! The port is for the cluster, never for the internet: Kubernetes exposes it only as a ClusterIP.
//! A process that must answer probes on another listener too (the edge gateway without an admin
//! port) serves the same endpoints from [`AdminServer::router`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::JwtVerifier;
use crate::config::AdminConfig;
use crate::metrics::{self, MetricsRegistry};

/// A check slower than this counts as failing: a probe must answer within its own timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One named readiness condition: an async function that says what is wrong, if anything. The
/// message is shown on `/readyz`, so it must not carry secrets or database error text.
#[derive(Clone)]
pub struct ReadinessCheck {
    name: String,
    check: CheckFn,
}

impl ReadinessCheck {
    pub fn new<F, Fut>(name: impl Into<String>, check: F) -> ReadinessCheck
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        ReadinessCheck {
            name: name.into(),
            check: Arc::new(move || Box::pin(check())),
        }
    }

    /// The database answers `SELECT 1`.
    pub fn postgres(pool: sqlx::PgPool) -> ReadinessCheck {
        ReadinessCheck::new("postgres", move || {
            let pool = pool.clone();
            async move {
                match sqlx::query("SELECT 1").execute(&pool).await {
                    Ok(_) => Ok(()),
                    Err(sqlx::Error::PoolTimedOut) => Err("no connection available in time".into()),
                    Err(sqlx::Error::Io(_) | sqlx::Error::Tls(_)) => Err("cannot connect".into()),
                    Err(sqlx::Error::Database(_)) => Err("query failed".into()),
                    Err(_) => Err("unavailable".into()),
                }
            }
        })
    }

    /// The database answers and has every migration this build expects (`expected_version`, see
    /// [`crate::db::expected_migration_version`]): what "can serve requests" means for a service.
    /// A schema behind the binary (a migration Job not yet run) is not ready; one ahead of it (a
    /// newer replica migrated first during a rolling update) is.
    pub fn database(pool: sqlx::PgPool, expected_version: i64) -> ReadinessCheck {
        ReadinessCheck::new("postgres", move || {
            let pool = pool.clone();
            async move {
                match crate::db::applied_migration_version(&pool).await {
                    Ok(applied) if applied >= expected_version => Ok(()),
                    Ok(applied) => Err(format!(
                        "migrations not applied (schema at {applied}, this build needs {expected_version})"
                    )),
                    Err(sqlx::Error::PoolTimedOut) => Err("no connection available in time".into()),
                    Err(sqlx::Error::Io(_) | sqlx::Error::Tls(_)) => Err("cannot connect".into()),
                    Err(sqlx::Error::Database(_)) => Err("query failed".into()),
                    Err(_) => Err("unavailable".into()),
                }
            }
        })
    }

    /// The client is connected to the broker (it reconnects on its own; this only reports).
    /// Services do not gate readiness on it: their writes go to the outbox while the broker is
    /// away, so a broker outage must not take every instance out of its load balancer. They
    /// report it as the `nats_connected` gauge instead; a process whose only job is the broker
    /// may still use this check.
    pub fn nats(client: async_nats::Client) -> ReadinessCheck {
        ReadinessCheck::new("nats", move || {
            let state = client.connection_state();
            async move {
                match state {
                    async_nats::connection::State::Connected => Ok(()),
                    other => Err(format!("connection {other:?}").to_lowercase()),
                }
            }
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self) -> Result<(), String> {
        match tokio::time::timeout(CHECK_TIMEOUT, (self.check)()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
        }
    }
}

impl std::fmt::Debug for ReadinessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessCheck")
            .field("name", &self.name)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("config key `admin.listen`: cannot bind {addr}: {source}")]
pub struct AdminError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Builds the admin server.
pub struct AdminServer {
    listen: SocketAddr,
    registry: Arc<MetricsRegistry>,
    checks: Vec<ReadinessCheck>,
    linger: Duration,
    extra: axum::Router,
}

impl AdminServer {
    /// `/metrics` serves `registry` (for a gRPC service, [`crate::metrics::Metrics::registry`]).
    pub fn new(config: &AdminConfig, registry: Arc<MetricsRegistry>) -> AdminServer {
        AdminServer {
            listen: config.listen,
            registry,
            checks: Vec::new(),
            linger: Duration::ZERO,
            extra: axum::Router::new(),
        }
    }

    /// Serve a service's own plain-HTTP routes on this port too.
    pub fn routes(mut self, router: axum::Router) -> AdminServer {
        self.extra = self.extra.merge(router);
        self
    }

    /// The dead-letter endpoints, over this service's `dead_letters` table (a replay is carried
    /// out by the service's own consumer; see `consumer::replay_dead_letter`). Only an operator
    /// may call them (see [`OperatorAccess`]): a replay re-runs a handler, and the list shows
    /// event payloads.
    pub fn dead_letters(self, pool: sqlx::PgPool, access: OperatorAccess) -> AdminServer {
        let router = axum::Router::new()
            .route("/dead-letters", get(list_dead_letters))
            .route(
                "/dead-letters/{id}/replay",
                axum::routing::post(replay_dead_letter),
            )
            .with_state(DeadLetterState {
                pool,
                access: Arc::new(access),
            });
        self.routes(router)
    }

    pub fn readiness(mut self, check: ReadinessCheck) -> AdminServer {
        self.checks.push(check);
        self
    }

    /// Keep answering this long after shutdown starts (`/readyz` then says 503), so probes see
    /// "not ready" rather than a refused connection, and `/metrics` can be scraped while the gRPC
    /// server drains. Pass `grpc.shutdown_grace_ms`. Default: stop at once.
    pub fn linger(mut self, linger: Duration) -> AdminServer {
        self.linger = linger;
        self
    }

    /// Bind `admin.listen` (port 0 picks a free port).
    pub async fn bind(self) -> Result<BoundAdmin, AdminError> {
        let addr = self.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AdminError { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| AdminError { addr, source })?;
        Ok(BoundAdmin {
            local_addr,
            listener,
            server: self,
        })
    }
}

impl AdminServer {
    /// The endpoints without a listener of their own; `/readyz` turns 503 once `shutdown` is
    /// cancelled.
    pub fn router(self, shutdown: CancellationToken) -> axum::Router {
        let state = AdminState {
            registry: self.registry,
            checks: self.checks.into(),
            shutdown,
        };
        axum::Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .with_state(state)
            .merge(self.extra)
    }
}

/// A bound, not yet serving, admin server.
pub struct BoundAdmin {
    /// The address actually bound.
    pub local_addr: SocketAddr,
    listener: TcpListener,
    server: AdminServer,
}

#[derive(Clone)]
struct AdminState {
    registry: Arc<MetricsRegistry>,
    checks: Arc<[ReadinessCheck]>,
    shutdown: CancellationToken,
}

impl BoundAdmin {
    /// Serve until `shutdown` is cancelled and the linger period has passed.
    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let linger = self.server.linger;
        let router = self.server.router(shutdown.clone());
        axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                tokio::time::sleep(linger).await;
            })
            .await
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    if state.shutdown.is_cancelled() {
        let body = json!({
            "status": "unready",
            "failing": [{ "check": "shutdown", "error": "shutting down" }],
        });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    // Concurrently, so one slow dependency does not hide behind another's timeout.
    let results = futures::future::join_all(state.checks.iter().map(ReadinessCheck::run)).await;
    let failing: Vec<_> = state
        .checks
        .iter()
        .zip(results)
        .filter_map(|(check, result)| {
            result
                .err()
                .map(|error| json!({ "check": check.name(), "error": error }))
        })
        .collect();
    if failing.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
    } else {
        tracing::debug!(failing = %serde_json::Value::from(failing.clone()), "not ready");
        let body = json!({ "status": "unready", "failing": failing });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.registry.encode(),
    )
        .into_response()
}

#[derive(Clone)]
struct DeadLetterState {
    pool: sqlx::PgPool,
    access: Arc<OperatorAccess>,
}

/// The permission a platform admin's token (scoped to no tenant) needs for the operator endpoints.
pub const OPERATOR_PERMISSION: &str = "platform.dead_letter.manage";

/// Who may use the operator endpoints: the bearer secret `admin.operator_token`, or a token of a
/// platform admin (scoped to no tenant, holding [`OPERATOR_PERMISSION`]; a tenant owner's `*`
/// does not count, because it is scoped to the owner's tenant).
pub struct OperatorAccess {
    token: Option<SecretString>,
    verifier: Option<JwtVerifier>,
}

impl OperatorAccess {
    pub fn new(token: Option<SecretString>, verifier: Option<JwtVerifier>) -> OperatorAccess {
        OperatorAccess { token, verifier }
    }

    pub(crate) async fn check(&self, headers: &http::HeaderMap) -> Result<(), crate::Error> {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| crate::Error::unauthenticated("an operator token is required"))?;
        if let Some(token) = &self.token
            && constant_time_eq(presented.as_bytes(), token.expose_secret().as_bytes())
        {
            return Ok(());
        }
        let Some(verifier) = &self.verifier else {
            return Err(crate::Error::unauthenticated("not the operator token"));
        };
        let claims = verifier.verify(presented).await?;
        if claims.tid.is_none() && claims.has_permission(OPERATOR_PERMISSION) {
            Ok(())
        } else {
            Err(crate::Error::forbidden(format!(
                "needs a platform token holding {OPERATOR_PERMISSION}"
            )))
        }
    }
}

/// Compare secrets in time independent of where they differ (the length may show).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(serde::Deserialize)]
struct DeadLetterQuery {
    #[serde(default)]
    include_replayed: bool,
}

async fn list_dead_letters(
    State(state): State<DeadLetterState>,
    headers: http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<DeadLetterQuery>,
) -> Response {
    if let Err(err) = state.access.check(&headers).await {
        return admin_error(err);
    }
    match crate::consumer::list_dead_letters(&state.pool, query.include_replayed).await {
        Ok(rows) => Json(json!({ "deadLetters": rows })).into_response(),
        Err(err) => admin_error(err),
    }
}

async fn replay_dead_letter(
    State(state): State<DeadLetterState>,
    headers: http::HeaderMap,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Response {
    if let Err(err) = state.access.check(&headers).await {
        return admin_error(err);
    }
    match crate::consumer::replay_dead_letter(&state.pool, id).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "replayed": id }))).into_response(),
        Err(err) => admin_error(err),
    }
}

/// A platform error as JSON with its HTTP status; internal causes are logged, never shown.
pub(crate) fn admin_error(err: crate::Error) -> Response {
    let status = err.code().http_status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = ?err, "admin request failed");
    }
    (
        status,
        Json(json!({ "code": err.code().as_str(), "message": err.message() })),
    )
        .into_response()
}
