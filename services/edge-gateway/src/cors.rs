//! CORS for browser frontends, and the security headers every response carries.
//!
//! Tokens travel in `Authorization`, never in cookies, so credentials are never allowed
//! cross-origin and a wildcard origin is safe to offer when configured.

use std::collections::HashSet;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use crate::config::CorsConfig;
use crate::problem::Problem;

/// Request headers a browser may send cross-origin, besides the allow-listed forwarded ones.
const ALLOWED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "x-api-key",
    "x-request-id",
    "idempotency-key",
    "traceparent",
    "tracestate",
    // gRPC-Web clients (grpc-web, Connect).
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
];
const EXPOSED_HEADERS: &str = "x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset, www-authenticate, grpc-status, grpc-message, grpc-status-details-bin";
const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";

pub struct Cors {
    any: bool,
    origins: HashSet<String>,
    allow_headers: HeaderValue,
    max_age: HeaderValue,
}

impl Cors {
    pub fn new(config: &CorsConfig, forwarded: &[HeaderName]) -> Cors {
        let mut headers: Vec<&str> = ALLOWED_HEADERS.to_vec();
        headers.extend(forwarded.iter().map(HeaderName::as_str));
        Cors {
            any: config.allowed_origins.iter().any(|o| o.0 == "*"),
            origins: config.allowed_origins.iter().map(|o| o.0.clone()).collect(),
            allow_headers: HeaderValue::from_str(&headers.join(", "))
                .unwrap_or(HeaderValue::from_static("")),
            max_age: HeaderValue::from(config.max_age_secs),
        }
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.any || origin.to_str().is_ok_and(|o| self.origins.contains(o))
    }

    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to a preflight request.
    pub fn preflight(&self, headers: &HeaderMap) -> Result<(StatusCode, HeaderMap), Problem> {
        let origin = headers
            .get(header::ORIGIN)
            .cloned()
            .unwrap_or(HeaderValue::from_static("null"));
        if !self.allows(&origin) {
            return Err(Problem::forbidden("this origin may not call the API"));
        }
        let mut out = HeaderMap::new();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            self.allow_headers.clone(),
        );
        out.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        out.insert(
            header::VARY,
            HeaderValue::from_static(
                "origin, access-control-request-method, access-control-request-headers",
            ),
        );
        Ok((StatusCode::NO_CONTENT, out))
    }

    /// CORS headers on an actual response, when the origin is allowed.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        let Some(origin) = origin else { return };
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        if self.allows(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
    }
}

/// Headers every response carries. API answers are data, never pages: nothing may frame, sniff or
/// cache them; the docs page sets its own content security policy.
pub fn security_headers(headers: &mut HeaderMap, hsts: bool) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}
