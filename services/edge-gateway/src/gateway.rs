//! The request pipeline. In order, for a routed request:
//!
//! 1. route: the compiled table (404, or 405 with `Allow`);
//! 2. declared size: a `Content-Length` over the limit is 413 before anything else runs;
//! 3. authenticate: bearer JWT or API key, unless the route is public (401); revoked sessions and
//!    keys are refused here. An address that failed authentication too often is answered 429
//!    before its credential is even looked at (and so before identity is asked about a key);
//! 4. tenant: a `{tenant_id}` in the path must be the token's tenant (403);
//! 5. rate limit: per IP on public routes (whatever token comes along), else per API key,
//!    tenant or user (429) - after authentication, because the key is who is calling;
//! 6. entitlements: the tenant is ACTIVE and has the route's module (403);
//! 7. read and transcode the body, path and query (400, 413, 415);
//! 8. call the upstream with the verified metadata; relay the answer or map its status.
//!
//! Every answer, whichever step produced it, leaves through [`handle`], which adds the request
//! id, the security and CORS headers, records metrics and logs once.
//!
//! Before routing, the gateway's own paths (probes, metrics, OpenAPI, docs) are answered by
//! [`crate::endpoints`]; the rate-limit key is chosen in [`crate::ratelimit`]; what reaches the
//! upstream as metadata is decided in [`crate::headers`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use keel_kernel::TenantId;
use keel_kernel::auth::PrincipalKind;
use prost_reflect::DescriptorPool;
use sha2::Digest;
use tracing::Instrument;

use crate::auth::{Authenticator, Principal};
use crate::compression::Compressor;
use crate::config::{ConfigError, Loaded};
use crate::cors::{Cors, security_headers};
use crate::endpoints::{Endpoints, JwksReadiness};
use crate::entitlements::Entitlements;
use crate::grpc::{GrpcSurface, Protocol};
use crate::headers::{self, API_KEY, Forwarding, REQUEST_ID};
use crate::metrics::GatewayMetrics;
use crate::openapi;
use crate::problem::Problem;
use crate::ratelimit::{self, Decision, RateLimiting, ceil_secs};
use crate::revocation::Revocations;
use crate::router::{Binding, BodyRule, Lookup, Route, Router};
use crate::stream::{self, Format, StreamContext};
use crate::transcode::{self, Incoming};
use crate::upstream::{CallError, Upstream};

/// Everything a request needs, built once at start and shared.
pub struct Gateway {
    pub service: String,
    router: Router,
    pub(crate) upstreams: HashMap<String, Upstream>,
    pub(crate) grpc: GrpcSurface,
    pub(crate) auth: Authenticator,
    pub(crate) revocations: Arc<Revocations>,
    entitlements: Option<Entitlements>,
    pub(crate) rate_limits: RateLimiting,
    cors: Cors,
    pub(crate) forwarding: Forwarding,
    pub(crate) max_body: usize,
    hsts: bool,
    jwks: Arc<JwksReadiness>,
    pub endpoints: Endpoints,
    pub metrics: GatewayMetrics,
    pub(crate) compressor: Compressor,
    etags: bool,
}

impl Gateway {
    pub fn new(loaded: &Loaded, pool: &DescriptorPool) -> Result<Gateway, ConfigError> {
        let routes = &loaded.routes;
        let router = Router::build(pool, routes, &loaded.routes_source)?;
        let upstreams: HashMap<String, Upstream> = routes
            .upstreams
            .iter()
            .map(|(name, config)| (name.clone(), Upstream::new(name, config)))
            .collect();
        let verifier = keel_kernel::JwtVerifier::new(&loaded.config.auth)
            .map_err(|err| ConfigError::invalid("auth", err.to_string()))?;
        let jwks = Arc::new(JwksReadiness::new(verifier.clone()));
        let exchange = routes.api_keys.as_ref().and_then(|keys| {
            upstreams
                .get(&keys.upstream)
                .map(|u| (u, Duration::from_secs(keys.cache_secs)))
        });
        let revocations = Arc::new(Revocations::new(&loaded.config.revocation));
        let auth = Authenticator::new(verifier, exchange, revocations.clone());
        let entitlements = routes.entitlements.as_ref().and_then(|config| {
            upstreams
                .get(&config.upstream)
                .map(|upstream| Entitlements::new(upstream, Duration::from_secs(config.cache_secs)))
        });
        let forward: Vec<HeaderName> = routes.forward_headers.iter().map(|h| h.0.clone()).collect();
        let openapi = openapi::document(&router, pool, &loaded.config.service);
        let openapi = Bytes::from(serde_json::to_vec(&openapi).unwrap_or_default());
        let metrics = GatewayMetrics::new(&loaded.config.service);
        let grpc = GrpcSurface::new(&router, pool)
            .map_err(|err| ConfigError::invalid("routes", format!("gRPC reflection: {err}")))?;
        let endpoints = Endpoints::new(
            metrics.registry(),
            jwks.clone(),
            openapi,
            loaded.config.admin.is_none(),
        );
        Ok(Gateway {
            service: loaded.config.service.clone(),
            router,
            upstreams,
            grpc,
            auth,
            revocations,
            entitlements,
            rate_limits: RateLimiting::new(routes.rate_limits.clone()),
            cors: Cors::new(&routes.cors, &forward),
            forwarding: Forwarding::new(forward, loaded.config.http.trusted_proxies),
            max_body: loaded.config.http.max_body_bytes,
            hsts: loaded.config.http.hsts,
            jwks,
            endpoints,
            metrics,
            compressor: Compressor::new(&loaded.config.http.compression),
            etags: loaded.config.http.etags,
        })
    }

    /// Load identity's signing keys now (start-up warm-up); failures are retried by `/readyz`.
    pub async fn warm_up(&self) {
        self.jwks.warm_up().await;
    }

    pub fn router(&self) -> &Router {
        &self.router
    }
}

/// Every request on the public listener, from `peer`.
pub async fn handle(gateway: &Gateway, peer: SocketAddr, request: Request) -> Response {
    let started = Instant::now();
    let request_id = headers::request_id(request.headers().get(REQUEST_ID));
    let method = request.method().clone();
    let origin = request.headers().get(header::ORIGIN).cloned();
    let span = tracing::info_span!(
        "http_request",
        http.method = %method,
        http.path = request.uri().path(),
        request_id = request_id.to_str().unwrap_or(""),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        tenant_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    keel_kernel::telemetry::set_parent(
        &span,
        keel_kernel::telemetry::extract_grpc(request.headers()),
    );
    let (label, mut response) = gateway
        .dispatch(request, peer, &request_id)
        .instrument(span.clone())
        .await;
    let status = response.status();
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID, request_id);
    security_headers(headers, gateway.hsts);
    gateway.cors.decorate(origin.as_ref(), headers);
    span.record("status", status.as_u16());
    let elapsed = started.elapsed();
    gateway
        .metrics
        .observe_http(label, &method, status.as_u16(), elapsed.as_secs_f64());
    if status.is_server_error() {
        tracing::warn!(parent: &span, status = status.as_u16(), elapsed_ms = elapsed.as_millis() as u64, "request failed");
    } else {
        tracing::debug!(parent: &span, status = status.as_u16(), elapsed_us = elapsed.as_micros() as u64, "request served");
    }
    response
}

impl Gateway {
    async fn dispatch<'g>(
        &'g self,
        request: Request,
        peer: SocketAddr,
        request_id: &HeaderValue,
    ) -> (&'g str, Response) {
        let (parts, body) = request.into_parts();
        if let Some(protocol) = Protocol::of(&parts.headers) {
            let client = self.forwarding.client_ip(&parts.headers, peer);
            return self.grpc(protocol, parts, body, client, request_id).await;
        }
        let path = parts.uri.path();
        if let Some(response) = self.endpoints.answer(&parts.method, path, request_id).await {
            return ("gateway", response);
        }
        if Cors::is_preflight(&parts.method, &parts.headers) {
            return match self.cors.preflight(&parts.headers) {
                Ok((status, headers)) => {
                    let mut response = Response::new(Body::empty());
                    *response.status_mut() = status;
                    *response.headers_mut() = headers;
                    ("preflight", response)
                }
                Err(problem) => ("preflight", problem.into_response(request_id)),
            };
        }
        match self.router.lookup(&parts.method, path) {
            Lookup::NotFound => {
                let problem = Problem::not_found(format!(
                    "no route for {} {}",
                    parts.method,
                    truncate(path, 200)
                ));
                ("no_route", problem.into_response(request_id))
            }
            Lookup::MethodNotAllowed(allowed) => {
                let allow = allowed
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                let problem = Problem::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    keel_kernel::ErrorCode::Validation,
                    format!("{} is not allowed here; use {allow}", parts.method),
                )
                .with_header(
                    header::ALLOW,
                    HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static("")),
                );
                ("method_not_allowed", problem.into_response(request_id))
            }
            Lookup::Found { binding, segments } => {
                let route = &binding.route;
                tracing::Span::current().record("route", route.id.as_str());
                let client = self.forwarding.client_ip(&parts.headers, peer);
                let mut limit = None;
                let outcome = self
                    .forward(
                        binding, &segments, &parts, body, client, request_id, &mut limit,
                    )
                    .await;
                // A refused credential, or a public method (login, refresh) refusing one; a
                // protected route called with no credential at all is no guess.
                if let Err(problem) = &outcome
                    && problem.code == keel_kernel::ErrorCode::Authn
                    && (route.public || presents_credential(&parts.headers))
                {
                    self.rate_limits.record_failed_auth(client);
                }
                let mut response =
                    outcome.unwrap_or_else(|problem| problem.into_response(request_id));
                if let Some(decision) = limit {
                    ratelimit::set_headers(response.headers_mut(), &decision);
                }
                (route.id.as_str(), response)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        binding: &Binding,
        segments: &[&str],
        parts: &Parts,
        body: Body,
        client: IpAddr,
        request_id: &HeaderValue,
        limit: &mut Option<Decision>,
    ) -> Result<Response, Problem> {
        let route = &binding.route;
        let max_body = route.max_body.unwrap_or(self.max_body);
        if declared_length(&parts.headers).is_some_and(|len| len > max_body as u64) {
            return Err(too_large(max_body));
        }
        let principal = self
            .authenticate(route, &parts.headers, client, request_id, limit)
            .await?;
        let captures = binding
            .template
            .captures(segments)
            .map_err(|description| Problem::bad_request(format!("the URL path {description}")))?;
        let tenant = binding.tenant_var.map(|index| captures[index].1.as_str());
        self.authorize(route, principal.as_ref(), tenant, client, request_id, limit)
            .await?;
        let body = read_body(body, max_body).await?;
        if !body.is_empty() && matches!(binding.body, BodyRule::All | BodyRule::Field(_)) {
            check_content_type(&parts.headers)?;
        }
        let message = transcode::request(
            binding,
            &Incoming {
                captures: &captures,
                query: parts.uri.query(),
                body: &body,
                headers: &parts.headers,
            },
        )?;
        let metadata =
            self.forwarding
                .metadata(&parts.headers, principal.as_ref(), request_id, client);
        let upstream = self
            .upstreams
            .get(&route.upstream)
            .ok_or_else(|| Problem::unavailable(format!("no upstream `{}`", route.upstream)))?;
        if route.streaming() {
            let streaming = upstream
                .server_streaming(route, message, metadata)
                .await
                .map_err(|err| self.call_problem(err, upstream, route))?;
            self.metrics.observe_upstream(&upstream.name, "0");
            let context = StreamContext {
                format: Format::negotiate(parts.headers.get(header::ACCEPT)),
                response_body: binding.response_body.clone(),
                idle: upstream.timeout,
                long_lived: route.long_lived,
                event_id: stream::event_id_field(&route.method.output()),
                upstream: upstream.name.to_string(),
                request_id: request_id.clone(),
            };
            return stream::respond(streaming, context).await;
        }
        let idempotent = binding.http_method == Method::GET;
        let reply = upstream
            .unary(route, message, metadata, idempotent)
            .await
            .map_err(|err| self.call_problem(err, upstream, route))?;
        self.metrics.observe_upstream(&upstream.name, "0");
        let json = transcode::response(binding.response_body.as_ref(), &reply).map_err(|err| {
            tracing::error!(error = %err, "the upstream's response could not be written as JSON");
            Problem::internal()
        })?;
        if idempotent && self.etags {
            return Ok(conditional_json(&parts.headers, Bytes::from(json)));
        }
        Ok(text_response(
            StatusCode::OK,
            "application/json",
            Bytes::from(json),
        ))
    }

    /// Steps 3 of the pipeline, for every client kind: the failed-authentication limit, then the
    /// credential (none is fine on a public route).
    pub(crate) async fn authenticate(
        &self,
        route: &Route,
        headers: &HeaderMap,
        client: IpAddr,
        request_id: &HeaderValue,
        limit: &mut Option<Decision>,
    ) -> Result<Option<Principal>, Problem> {
        if (route.public || presents_credential(headers))
            && let Some(decision) = self.rate_limits.failed_auth_refusal(client)
        {
            *limit = Some(decision);
            return Err(self.too_many_requests("failed_auth", &decision));
        }
        let principal = match self.auth.authenticate(headers, request_id).await {
            Ok(None) if !route.public => {
                return Err(Problem::unauthenticated(
                    "missing credentials: send `Authorization: Bearer <token>` or an API key",
                ));
            }
            Ok(principal) => principal,
            // A caller whose token expired must still be able to log in; the failure counts.
            Err(problem) if route.public => {
                if problem.code == keel_kernel::ErrorCode::Authn {
                    self.rate_limits.record_failed_auth(client);
                }
                None
            }
            Err(problem) => return Err(problem),
        };
        if let Some(principal) = &principal {
            let span = tracing::Span::current();
            if let Some(tenant) = &principal.claims.tid {
                span.record("tenant_id", tracing::field::display(tenant));
            }
            if principal.claims.kind == PrincipalKind::User {
                span.record("user_id", principal.claims.sub.as_str());
            }
        }
        Ok(principal)
    }

    /// Steps 4 to 6, for every client kind: the tenant the request names (a path variable for
    /// REST, the same field of the message for gRPC) must be the token's, then the rate limit,
    /// then the tenant's state and modules.
    pub(crate) async fn authorize(
        &self,
        route: &Route,
        principal: Option<&Principal>,
        tenant_in_request: Option<&str>,
        client: IpAddr,
        request_id: &HeaderValue,
        limit: &mut Option<Decision>,
    ) -> Result<(), Problem> {
        if route.tenant_match
            && let (Some(tenant), Some(principal)) = (tenant_in_request, principal)
        {
            check_tenant(principal, tenant)?;
        }
        let decision = self.rate_limits.check(route, principal, client);
        if let Some((policy, decision)) = decision {
            *limit = Some(decision);
            if !decision.allowed {
                return Err(self.too_many_requests(policy, &decision));
            }
        }
        // Public routes (login, refresh) must work whatever state the caller's old tenant is in.
        if route.active_tenant
            && !route.public
            && let (Some(entitlements), Some(principal)) = (&self.entitlements, principal)
            && let Some(tenant) = principal.claims.tid
        {
            entitlements
                .check(
                    tenant,
                    route.module.as_deref(),
                    &principal.authorization,
                    request_id,
                )
                .await?;
        }
        Ok(())
    }

    /// 429 for a request refused by `policy`, counted in the metrics.
    fn too_many_requests(&self, policy: &str, decision: &Decision) -> Problem {
        self.metrics
            .rate_limited
            .get_or_create(&crate::metrics::LimitLabels {
                policy: policy.to_owned(),
            })
            .inc();
        let mut problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            keel_kernel::ErrorCode::RateLimit,
            format!(
                "too many requests; retry in {} s",
                ceil_secs(decision.retry_after).max(1)
            ),
        );
        problem.retry_after = Some(decision.retry_after.max(Duration::from_secs(1)));
        problem
    }

    fn call_problem(&self, error: CallError, upstream: &Upstream, route: &Route) -> Problem {
        match error {
            CallError::Timeout => {
                self.metrics.observe_upstream(&upstream.name, "timeout");
                Problem::timeout(format!(
                    "the {} service did not answer within {} ms",
                    upstream.name,
                    upstream.timeout.as_millis()
                ))
            }
            CallError::Shed(shed) => {
                self.metrics.observe_upstream(&upstream.name, "shed");
                shed.problem(&upstream.name)
            }
            CallError::Status(status) => {
                self.metrics
                    .observe_upstream(&upstream.name, &(status.code() as i32).to_string());
                let mut problem = Problem::from_status(&status, &upstream.name);
                let input = route.method.input();
                for violation in &mut problem.violations {
                    violation.field = transcode::json_field_path(&input, &violation.field);
                }
                problem
            }
        }
    }
}

pub(crate) fn presents_credential(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION) || headers.contains_key(API_KEY)
}

fn check_tenant(principal: &Principal, in_path: &str) -> Result<(), Problem> {
    let shown = truncate(in_path, 64);
    match principal.claims.tid {
        Some(tenant) if in_path.parse::<TenantId>().is_ok_and(|t| t == tenant) => Ok(()),
        Some(tenant) => Err(Problem::forbidden(format!(
            "this token is scoped to tenant {tenant}, not to tenant {shown}"
        ))),
        None => Err(Problem::forbidden(format!(
            "this call needs a token scoped to tenant {shown}; switch to it first"
        ))),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        keel_kernel::ErrorCode::Validation,
        format!("the request body is larger than {limit} bytes"),
    )
}

pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Problem> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Err(_) => Err(Problem::bad_request("the request body could not be read")),
    }
}

/// JSON bodies only: `application/json` or `application/<anything>+json`, UTF-8. A body without a
/// `Content-Type` is taken as JSON.
fn check_content_type(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let unsupported = || {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            keel_kernel::ErrorCode::Validation,
            "the request body must be JSON (Content-Type: application/json)",
        )
    };
    let text = value
        .to_str()
        .map_err(|_| unsupported())?
        .to_ascii_lowercase();
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or("").trim();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    let utf8 = parts.all(|param| match param.trim().split_once('=') {
        Some(("charset", charset)) => charset.trim_matches('"').eq_ignore_ascii_case("utf-8"),
        _ => true,
    });
    if json && utf8 {
        Ok(())
    } else {
        Err(unsupported())
    }
}

fn text_response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A GET's JSON answer with a strong `ETag`, or 304 when the client's `If-None-Match` names it.
///
/// The platform's messages carry no version the gateway could use generically, so the tag is a
/// hash of the exact bytes sent (SHA-256, 128 bits kept): equal bodies, equal tags, whichever
/// replica answers. The upstream is still called; what is saved is the transfer.
fn conditional_json(request: &HeaderMap, json: Bytes) -> Response {
    let digest = sha2::Sha256::digest(&json);
    let tag = format!(
        "\"{}\"",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    );
    let matched = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .map(|candidate| candidate.trim())
        // If-None-Match compares weakly: `W/"x"` matches `"x"`.
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag);
    let mut response = if matched {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        text_response(StatusCode::OK, "application/json", json)
    };
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}
