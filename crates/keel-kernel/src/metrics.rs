//! Prometheus metrics: one [`MetricsRegistry`] per process, served as text on the admin port's
//! `/metrics`. [`Metrics`] registers the kernel's series on it (shared as `Arc<Metrics>` by the
//! gRPC server, the outbox relay and the consumers); a process with series of its own (the edge
//! gateway's HTTP metrics) registers them on the same kind of registry.
//!
//! Every series carries a constant `service` label, so dashboards can aggregate the mesh without
//! each call site repeating it. Names are prefixed `keel_`; counters get the OpenMetrics `_total`
//! suffix from the encoder.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

/// The `Content-Type` of [`MetricsRegistry::encode`]'s output (OpenMetrics text, which
/// Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A process's Prometheus registry, with the platform's conventions (the `keel_` prefix and a
/// constant `service` label). Registration takes `&self`, so the registry can be shared (with
/// the admin server) before everything that reports on it is built.
pub struct MetricsRegistry {
    registry: Mutex<Registry>,
}

impl MetricsRegistry {
    pub fn new(service: &str) -> MetricsRegistry {
        let registry = Registry::with_prefix_and_labels(
            "keel",
            [(Cow::Borrowed("service"), Cow::Owned(service.to_owned()))].into_iter(),
        );
        MetricsRegistry {
            registry: Mutex::new(registry),
        }
    }

    /// Add a metric and hand it back: the returned handle reports to the registry (clones of a
    /// metric share its value).
    pub fn register<M: Metric + Clone>(&self, name: &str, help: &str, metric: M) -> M {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric.clone());
        metric
    }

    /// Every registered series in OpenMetrics text (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        // Writing into a String cannot fail; an error could only come from a metric's own encoder,
        // and then a partial page is still more useful to a scraper than none.
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        out
    }
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRegistry").finish_non_exhaustive()
    }
}

/// Labels of the per-RPC series. `method` is the gRPC path (`/identity.v1.Users/Get`), `code` the
/// numeric gRPC status as text (`"0"` for OK), so it joins with gRPC's own tooling.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    pub method: String,
    pub code: String,
}

/// Labels of the per-consumer series: the durable consumer's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: String,
}

/// All of the process's metrics. Cloning a metric handle shares its value, so call sites may keep
/// their own handles; the registry holds the originals.
pub struct Metrics {
    /// Finished RPCs by method and status code.
    pub grpc_requests: Family<GrpcLabels, Counter>,
    /// RPC latency in seconds, from the request's arrival to its final status.
    pub grpc_latency: Family<GrpcLabels, Histogram>,
    /// Outbox rows not yet published.
    pub outbox_backlog: Gauge,
    /// Age in seconds of the oldest outbox row not yet published (0 when there is none): how
    /// late events are, which the backlog count alone cannot say.
    pub outbox_oldest_age: Gauge<f64, AtomicU64>,
    /// Outbox rows published (acknowledged by JetStream).
    pub outbox_published: Counter,
    /// The database pool: connections open, of them idle, and the configured maximum. In use
    /// over maximum is the pool's saturation.
    pub db_pool_connections: Gauge,
    pub db_pool_idle_connections: Gauge,
    pub db_pool_max_connections: Gauge,
    /// Messages pending for each durable consumer.
    pub consumer_lag: Family<ConsumerLabels, Gauge>,
    /// Messages each consumer handled (effect committed and acknowledged).
    pub consumer_handled: Family<ConsumerLabels, Counter>,
    /// Rows in the dead-letter table, by consumer.
    pub dead_letters: Family<ConsumerLabels, Gauge>,
    registry: Arc<MetricsRegistry>,
}

/// 1 ms to ~16 s in doublings: covers a cache hit through a request that hits its deadline.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    /// The kernel's series, on a new registry for `service`.
    pub fn new(service: &str) -> Metrics {
        let registry = Arc::new(MetricsRegistry::new(service));
        let on = &registry;
        Metrics {
            grpc_requests: on.register(
                "grpc_requests",
                "Finished gRPC requests by method and status code",
                Family::default(),
            ),
            grpc_latency: on.register(
                "grpc_request_duration_seconds",
                "gRPC request latency by method and status code",
                Family::new_with_constructor(latency_histogram),
            ),
            outbox_backlog: on.register(
                "outbox_backlog",
                "Outbox rows not yet published",
                Gauge::default(),
            ),
            outbox_oldest_age: on.register(
                "outbox_oldest_unpublished_age_seconds",
                "Age of the oldest outbox row not yet published, 0 when none",
                Gauge::default(),
            ),
            outbox_published: on.register(
                "outbox_published",
                "Outbox rows published to JetStream",
                Counter::default(),
            ),
            db_pool_connections: on.register(
                "db_pool_connections",
                "Database connections open in this process's pool",
                Gauge::default(),
            ),
            db_pool_idle_connections: on.register(
                "db_pool_idle_connections",
                "Database connections open and idle in this process's pool",
                Gauge::default(),
            ),
            db_pool_max_connections: on.register(
                "db_pool_max_connections",
                "The pool's configured maximum (database.max_connections)",
                Gauge::default(),
            ),
            consumer_lag: on.register(
                "consumer_lag",
                "Messages pending for a durable consumer",
                Family::default(),
            ),
            consumer_handled: on.register(
                "consumer_handled",
                "Messages a consumer handled and acknowledged",
                Family::default(),
            ),
            dead_letters: on.register(
                "dead_letters",
                "Events in the dead-letter table by consumer",
                Family::default(),
            ),
            registry: registry.clone(),
        }
    }

    /// The registry these series are on: what the admin server serves.
    pub fn registry(&self) -> Arc<MetricsRegistry> {
        self.registry.clone()
    }

    /// Record one finished RPC.
    pub fn observe_grpc(&self, method: &str, code: tonic::Code, seconds: f64) {
        let labels = GrpcLabels {
            method: method.to_owned(),
            code: (code as i32).to_string(),
        };
        self.grpc_requests.get_or_create(&labels).inc();
        self.grpc_latency.get_or_create(&labels).observe(seconds);
    }

    /// The registry in OpenMetrics text (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        self.registry.encode()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_carries_the_service_label() {
        let metrics = Metrics::new("billing");
        metrics.observe_grpc("/billing.v1.Invoices/Get", tonic::Code::NotFound, 0.003);
        metrics.outbox_backlog.set(7);
        metrics
            .consumer_lag
            .get_or_create(&ConsumerLabels {
                consumer: "billing-from-tenancy".into(),
            })
            .set(3);
        let text = metrics.encode();
        assert!(
            text.contains(r#"keel_grpc_requests_total{service="billing",method="/billing.v1.Invoices/Get",code="5"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"keel_outbox_backlog{service="billing"} 7"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"keel_consumer_lag{service="billing",consumer="billing-from-tenancy"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains("keel_grpc_request_duration_seconds_bucket"),
            "{text}"
        );
    }
}
