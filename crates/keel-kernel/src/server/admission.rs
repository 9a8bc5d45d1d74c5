//! Admission with a bounded wait: at most `grpc.concurrency_limit` requests are handled at once;
//! above that a request waits for a slot, in arrival order, for at most `grpc.admission_max_wait_ms`
//! (or until the caller's own `grpc-timeout`, when that is nearer). Only a request that would
//! wait longer, or that finds `grpc.admission_queue_limit` requests already waiting, is refused:
//! UNAVAILABLE with a retry delay, which the gateway turns into 503 and `Retry-After`.
//!
//! Refusing everything above the limit at once (what `load_shed` does) turns a short burst into
//! errors although the burst would have been served a few milliseconds later; waiting without a
//! bound turns sustained overload into unbounded memory and latency. This sits between the two.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::Request;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Semaphore;
use tower::{BoxError, Layer, Service};

use crate::metrics::Metrics;

/// What a refused request is told to wait before retrying.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A request refused by admission: it would have waited too long, or the queue was full.
#[derive(Debug, thiserror::Error)]
#[error("the server is overloaded ({reason}), retry later")]
pub(super) struct Overloaded {
    pub(super) reason: &'static str,
    pub(super) retry_after: Duration,
}

/// The limits, as configured (see [`crate::config::GrpcConfig`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct AdmissionLimits {
    pub(super) concurrency: usize,
    pub(super) max_wait: Duration,
    pub(super) queue_limit: usize,
}

struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    limits: AdmissionLimits,
    waiting_gauge: Gauge,
    refused: Counter,
}

#[derive(Clone)]
pub(super) struct AdmissionLayer {
    admission: Arc<Admission>,
}

impl AdmissionLayer {
    pub(super) fn new(limits: AdmissionLimits, metrics: &Metrics) -> AdmissionLayer {
        let registry = metrics.registry();
        let waiting_gauge = registry.register(
            "grpc_admission_waiting",
            "Requests waiting for a slot above the concurrency limit",
            Gauge::default(),
        );
        let refused = registry.register(
            "grpc_admission_refused",
            "Requests refused by admission (waited too long or the queue was full)",
            Counter::default(),
        );
        AdmissionLayer {
            admission: Arc::new(Admission {
                slots: Arc::new(Semaphore::new(limits.concurrency.max(1))),
                waiting: AtomicUsize::new(0),
                limits,
                waiting_gauge,
                refused,
            }),
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = AdmissionService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AdmissionService {
            inner,
            admission: self.admission.clone(),
        }
    }
}

#[derive(Clone)]
pub(super) struct AdmissionService<S> {
    inner: S,
    admission: Arc<Admission>,
}

/// Decrements the waiting count however the wait ends (admitted, refused or cancelled).
struct Waiting<'a>(&'a Admission);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.waiting_gauge.dec();
    }
}

impl<S, B> Service<Request<B>> for AdmissionService<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    /// Always ready: the wait happens per request in `call`, where its deadline is known.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone that was not polled goes into the future; `self` keeps a fresh one (the
        // inner layers are always ready, and are driven to readiness below anyway).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let admission = self.admission.clone();
        let caller_deadline = grpc_timeout(&request);
        Box::pin(async move {
            let _slot = match admission.slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    let limits = admission.limits;
                    if admission.waiting.fetch_add(1, Ordering::AcqRel) >= limits.queue_limit {
                        admission.waiting.fetch_sub(1, Ordering::AcqRel);
                        admission.refused.inc();
                        return Err(Overloaded {
                            reason: "too many requests waiting",
                            retry_after: RETRY_AFTER,
                        }
                        .into());
                    }
                    admission.waiting_gauge.inc();
                    let _waiting = Waiting(&admission);
                    let wait = caller_deadline.map_or(limits.max_wait, |d| d.min(limits.max_wait));
                    match tokio::time::timeout(wait, admission.slots.clone().acquire_owned()).await
                    {
                        Ok(Ok(slot)) => slot,
                        // The semaphore is never closed; timing out is the refusal.
                        Ok(Err(_)) | Err(_) => {
                            admission.refused.inc();
                            return Err(Overloaded {
                                reason: "no slot within the admission wait",
                                retry_after: RETRY_AFTER,
                            }
                            .into());
                        }
                    }
                }
            };
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            inner.call(request).await.map_err(Into::into)
        })
    }
}

/// The caller's `grpc-timeout` header (`<at most 8 digits><unit>`, unit one of H M S m u n).
fn grpc_timeout<B>(request: &Request<B>) -> Option<Duration> {
    let value = request.headers().get("grpc-timeout")?.to_str().ok()?;
    parse_grpc_timeout(value)
}

fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_garbage_does_not() {
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("150m"), Some(Duration::from_millis(150)));
        assert_eq!(parse_grpc_timeout("1M"), Some(Duration::from_secs(60)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "10", "10x", "-1S", "123456789S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
