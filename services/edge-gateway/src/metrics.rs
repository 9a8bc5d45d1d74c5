//! The gateway's Prometheus series (HTTP requests, upstream calls, rate limiting), registered on a
//! kernel [`MetricsRegistry`], which gives them the platform's conventions (prefix `keel_`, a
//! constant `service` label, OpenMetrics text) and which the kernel's admin server serves.

use std::sync::Arc;

use keel_kernel::metrics::MetricsRegistry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

pub use keel_kernel::metrics::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route's RPC (`identity.v1.AuthService.Login`), or what the gateway answered itself
    /// (`no_route`, `openapi`, ...): bounded, unlike raw paths.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub upstream: String,
    /// The numeric gRPC code as text, `"0"` for OK, or `timeout`.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub policy: String,
}

pub struct GatewayMetrics {
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_latency: Family<HttpLabels, Histogram>,
    pub upstream_calls: Family<UpstreamLabels, Counter>,
    pub rate_limited: Family<LimitLabels, Counter>,
    registry: Arc<MetricsRegistry>,
}

impl GatewayMetrics {
    /// The gateway's series, on a new registry for `service`.
    pub fn new(service: &str) -> GatewayMetrics {
        let registry = Arc::new(MetricsRegistry::new(service));
        // 250 µs to ~8 s in doublings: the gateway's own answers are sub-millisecond.
        let http_latency = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        let on = &registry;
        GatewayMetrics {
            http_requests: on.register(
                "http_requests",
                "Finished HTTP requests by route, method and status",
                Family::default(),
            ),
            http_latency: on.register(
                "http_request_duration_seconds",
                "HTTP request latency by route, method and status",
                http_latency,
            ),
            upstream_calls: on.register(
                "upstream_calls",
                "gRPC calls to upstreams by gRPC status",
                Family::default(),
            ),
            rate_limited: on.register(
                "rate_limited",
                "Requests refused by a rate limit",
                Family::default(),
            ),
            registry: registry.clone(),
        }
    }

    /// The registry these series are on: what `/metrics` serves.
    pub fn registry(&self) -> Arc<MetricsRegistry> {
        self.registry.clone()
    }

    pub fn observe_http(&self, route: &str, method: &http::Method, status: u16, seconds: f64) {
        let labels = HttpLabels {
            route: route.to_owned(),
            method: method.as_str().to_owned(),
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_latency.get_or_create(&labels).observe(seconds);
    }

    pub fn observe_upstream(&self, upstream: &str, code: &str) {
        self.upstream_calls
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
                code: code.to_owned(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        self.registry.encode()
    }
}
