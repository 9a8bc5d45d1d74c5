//! Which request headers reach the upstream (as gRPC metadata), the client's address, and the
//! request id.
//!
//! Nothing a client sends is forwarded unless the route table allow-lists it; the gateway itself
//! sets the verified `authorization`, `x-request-id`, `traceparent` and the client's address
//! (`x-keel-client-ip`, [`CLIENT_IP`]). So a client-sent `x-tenant-id`, `x-user-id`, `x-roles`,
//! `x-keel-client-ip`, `X-Forwarded-For` or `X-Real-IP` never reaches a service, and the
//! allow-list refuses to name them.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName, HeaderValue, header};
use keel_kernel::server::RequestId;

use crate::auth::Principal;

/// The header carrying the request's id, in and out (the same as the kernel's gRPC servers).
pub const REQUEST_ID: &str = keel_kernel::server::REQUEST_ID_HEADER;
/// The API key header.
pub const API_KEY: &str = "x-api-key";
/// The client's address as this gateway resolved it: the only address services believe.
pub const CLIENT_IP: &str = keel_kernel::RequestMeta::CLIENT_IP_HEADER;

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
    /// How many proxies in front of the gateway append to `X-Forwarded-For` (0: the TCP peer is
    /// the client).
    trusted_proxies: usize,
}

impl Forwarding {
    pub fn new(allowed: Vec<HeaderName>, trusted_proxies: usize) -> Forwarding {
        Forwarding {
            allowed,
            trusted_proxies,
        }
    }

    /// The client's address. With no trusted proxy, the TCP peer. Behind `n` trusted proxies,
    /// the `n`-th `X-Forwarded-For` entry from the right: each trusted proxy appends the address
    /// it saw, so the right-most `n` entries were written by our own proxies and everything left
    /// of them by the client, who can write anything there. A chain shorter than `n` did not come
    /// through all our proxies; its left-most entry is the best anyone vouches for.
    pub fn client_ip(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        if self.trusted_proxies == 0 {
            return peer.ip();
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let Some(hop) = hops
            .len()
            .checked_sub(self.trusted_proxies)
            .and_then(|index| hops.get(index))
            .or_else(|| hops.first())
        else {
            return peer.ip();
        };
        // Our own proxy wrote this entry; anything but an address means a misconfigured proxy.
        hop.parse().unwrap_or_else(|_| {
            tracing::debug!(
                hop,
                "X-Forwarded-For entry is not an address; using the peer"
            );
            peer.ip()
        })
    }

    /// The gRPC metadata for the upstream: only what the gateway vouches for, plus allow-listed
    /// client headers.
    pub fn metadata(
        &self,
        headers: &HeaderMap,
        principal: Option<&Principal>,
        request_id: &HeaderValue,
        client: IpAddr,
    ) -> tonic::metadata::MetadataMap {
        let mut out = HeaderMap::with_capacity(8 + self.allowed.len());
        if let Some(principal) = principal {
            out.insert(header::AUTHORIZATION, principal.authorization.clone());
        }
        out.insert(REQUEST_ID, request_id.clone());
        if let Ok(value) = HeaderValue::try_from(client.to_string()) {
            out.insert(CLIENT_IP, value);
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

    fn chain(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_static(value));
        }
        headers
    }

    const PEER: &str = "10.0.0.7:41000";

    #[test]
    fn without_trusted_proxies_a_forwarded_for_claim_is_ignored() {
        let forwarding = Forwarding::new(Vec::new(), 0);
        let ip = forwarding.client_ip(&chain(&["1.2.3.4"]), PEER.parse().unwrap());
        assert_eq!(ip.to_string(), "10.0.0.7");
    }

    #[test]
    fn behind_one_trusted_proxy_the_right_most_hop_is_the_client() {
        let forwarding = Forwarding::new(Vec::new(), 1);
        let peer = PEER.parse().unwrap();
        let ip = forwarding.client_ip(&chain(&["1.2.3.4, 203.0.113.9"]), peer);
        assert_eq!(ip.to_string(), "203.0.113.9");
        // Several header lines are one list, in order.
        let ip = forwarding.client_ip(&chain(&["1.2.3.4", "203.0.113.9"]), peer);
        assert_eq!(ip.to_string(), "203.0.113.9");
    }

    #[test]
    fn behind_two_trusted_proxies_the_client_cannot_prepend_its_way_in() {
        let forwarding = Forwarding::new(Vec::new(), 2);
        let peer = PEER.parse().unwrap();
        let ip = forwarding.client_ip(&chain(&["6.6.6.6, 203.0.113.9, 10.0.0.2"]), peer);
        assert_eq!(ip.to_string(), "203.0.113.9");
        let ip = forwarding.client_ip(&chain(&["203.0.113.9"]), peer);
        assert_eq!(
            ip.to_string(),
            "203.0.113.9",
            "a short chain: its left-most hop"
        );
        let ip = forwarding.client_ip(&HeaderMap::new(), peer);
        assert_eq!(ip.to_string(), "10.0.0.7", "no chain: the peer");
    }

    #[test]
    fn the_gateways_client_ip_header_cannot_be_allow_listed() {
        assert!(is_reserved(CLIENT_IP));
        assert!(is_reserved("x-forwarded-for"));
        assert!(is_reserved("x-real-ip"));
    }
}
