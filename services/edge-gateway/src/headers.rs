//! Which request headers reach the upstream (as gRPC metadata), the client's address, and the
//! request id.
//!
//! Nothing a client sends is forwarded unless the route table allow-lists it; the gateway itself
//! sets the verified `authorization`, `x-request-id`, `traceparent` and `x-forwarded-for`. So a
//! client-sent `x-tenant-id`, `x-user-id` or `x-roles` never reaches a service, and the allow-list
//! refuses to name them.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName, HeaderValue, header};
use keel_kernel::server::RequestId;

use crate::auth::Principal;

/// The header carrying the request's id, in and out (the same as the kernel's gRPC servers).
pub const REQUEST_ID: &str = keel_kernel::server::REQUEST_ID_HEADER;
/// The API key header.
pub const API_KEY: &str = "x-api-key";

/// Internal identity headers some meshes trust; never accepted from a client here.
const INTERNAL: &[&str] = &[
    "x-tenant-id",
    "x-user-id",
    "x-roles",
    "x-permissions",
    "x-scopes",
    "x-principal",
    "x-principal-kind",
    "x-api-key-id",
    "x-session-id",
];
const INTERNAL_PREFIXES: &[&str] = &["x-internal-", "x-keel-", "grpc-", "x-envoy-", "proxy-"];
/// Set by the gateway or meaningless to forward (hop-by-hop, framing, gRPC's own).
const GATEWAY_OWNED: &[&str] = &[
    "authorization",
    API_KEY,
    REQUEST_ID,
    "traceparent",
    "tracestate",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "forwarded",
    "host",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "te",
    "trailer",
    "connection",
    "keep-alive",
    "upgrade",
];

/// Whether a (lowercase) header name may not be allow-listed for forwarding.
pub fn is_reserved(name: &str) -> bool {
    INTERNAL.contains(&name)
        || GATEWAY_OWNED.contains(&name)
        || INTERNAL_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// The client's request id when it is short printable ASCII (it is logged and echoed), else a
/// new UUIDv7. The same rule as the kernel's gRPC servers, so the id survives the hop unchanged.
pub fn request_id(value: Option<&HeaderValue>) -> HeaderValue {
    if let Some(value) = value
        && RequestId::from_header(value).is_some()
    {
        return value.clone();
    }
    // A UUID is always a valid header value.
    HeaderValue::from_str(RequestId::generate().as_str())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// A `traceparent` worth forwarding as is: `00-<32 hex>-<16 hex>-<2 hex>`.
pub fn valid_traceparent(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let parts: Vec<&str> = text.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

/// How a request's headers become the upstream's gRPC metadata.
pub struct Forwarding {
    /// The client headers the route table allow-lists.
    allowed: Vec<HeaderName>,
    /// Trust the last `X-Forwarded-For` entry (behind a load balancer that appends it).
    trust_forwarded_for: bool,
}

impl Forwarding {
    pub fn new(allowed: Vec<HeaderName>, trust_forwarded_for: bool) -> Forwarding {
        Forwarding {
            allowed,
            trust_forwarded_for,
        }
    }

    /// The client's address: the peer, or behind a trusted proxy the last `X-Forwarded-For` entry.
    pub fn client_ip(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        if self.trust_forwarded_for
            && let Some(last) = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
            && let Ok(ip) = last.trim().parse()
        {
            return ip;
        }
        peer.ip()
    }

    /// The gRPC metadata for the upstream: only what the gateway vouches for, plus allow-listed
    /// client headers.
    pub fn metadata(
        &self,
        headers: &HeaderMap,
        principal: Option<&Principal>,
        request_id: &HeaderValue,
        client: IpAddr,
        peer: SocketAddr,
    ) -> tonic::metadata::MetadataMap {
        let mut out = HeaderMap::with_capacity(8 + self.allowed.len());
        if let Some(principal) = principal {
            out.insert(header::AUTHORIZATION, principal.authorization.clone());
        }
        out.insert(REQUEST_ID, request_id.clone());
        let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(chain) if self.trust_forwarded_for => format!("{chain}, {}", peer.ip()),
            _ => client.to_string(),
        };
        if let Ok(value) = HeaderValue::try_from(forwarded_for) {
            out.insert("x-forwarded-for", value);
        }
        for name in &self.allowed {
            for value in headers.get_all(name) {
                out.append(name.clone(), value.clone());
            }
        }
        let mut metadata = tonic::metadata::MetadataMap::from_headers(out);
        keel_kernel::telemetry::inject_grpc(&mut metadata);
        if !metadata.contains_key("traceparent")
            && let Some(traceparent) = headers.get("traceparent").filter(|v| valid_traceparent(v))
            && let Ok(value) = traceparent.to_str().unwrap_or("").parse()
        {
            // No tracer in this process (tests): pass the caller's trace through unchanged.
            metadata.insert("traceparent", value);
            if let Some(state) = headers
                .get("tracestate")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
            {
                metadata.insert("tracestate", state);
            }
        }
        metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_are_reserved() {
        for name in [
            "x-tenant-id",
            "x-user-id",
            "x-roles",
            "x-internal-anything",
            "grpc-timeout",
            "authorization",
        ] {
            assert!(is_reserved(name), "{name}");
        }
        assert!(!is_reserved("accept-language"));
        assert!(!is_reserved("idempotency-key"));
    }

    #[test]
    fn an_odd_request_id_is_replaced() {
        let kept = request_id(Some(&HeaderValue::from_static("abc-123")));
        assert_eq!(kept, "abc-123");
        let replaced = request_id(Some(&HeaderValue::from_static("has space")));
        assert_ne!(replaced, "has space");
        assert_eq!(replaced.len(), 36);
    }
}
