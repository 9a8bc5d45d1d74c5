//! The metrics layer: one latency observation and one log line per request, with the status
//! the client saw.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

use crate::metrics::Metrics;

#[derive(Clone)]
pub(super) struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    pub(super) fn new(metrics: Arc<Metrics>) -> MetricsLayer {
        MetricsLayer { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub(super) struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    /// The status of a gRPC response is in its headers when it failed before sending anything
    /// ("trailers-only"), else in the trailers after the body, so a streaming call is measured
    /// until its last message. A call dropped before its status (the client cancelled or its
    /// own deadline passed) is counted as CANCELLED.
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut outcome = Outcome {
            metrics: self.metrics.clone(),
            method: request.uri().path().to_owned(),
            started: Instant::now(),
            span: tracing::Span::current(),
            done: false,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = match response.await {
                Ok(response) => response,
                Err(err) => {
                    outcome.finish(tonic::Code::Unknown);
                    return Err(err);
                }
            };
            if let Some(code) = grpc_code(response.headers()) {
                outcome.finish(code);
                return Ok(response);
            }
            if http_body::Body::is_end_stream(response.body()) {
                // No status anywhere: a broken response, which gRPC clients report as UNKNOWN.
                outcome.finish(tonic::Code::Unknown);
                return Ok(response);
            }
            Ok(response.map(|body| Body::new(MeteredBody { body, outcome })))
        })
    }
}

fn grpc_code(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|value| tonic::Code::from_bytes(value.as_bytes()))
}

/// Records one request's code and latency exactly once: when its status is known, or on drop.
struct Outcome {
    metrics: Arc<Metrics>,
    method: String,
    started: Instant,
    span: tracing::Span,
    done: bool,
}

impl Outcome {
    fn finish(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        // Unknown paths (scanners, typos) would each grow a new series; they share one.
        let method = if code == tonic::Code::Unimplemented {
            "unknown"
        } else {
            self.method.as_str()
        };
        self.metrics
            .observe_grpc(method, code, elapsed.as_secs_f64());
        self.span.record("grpc.code", code as i32);
        let _entered = self.span.enter();
        // Microsecond precision is plenty for a log line.
        let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1_000.0;
        if self.method.starts_with("/grpc.health.v1.Health/") {
            // Probes every few seconds would drown the log.
            tracing::debug!(grpc.code = code as i32, latency_ms, "request finished");
        } else {
            tracing::info!(grpc.code = code as i32, latency_ms, "request finished");
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

/// A response body that records the outcome when the trailers go by.
struct MeteredBody {
    body: Body,
    outcome: Outcome,
}

impl http_body::Body for MeteredBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.outcome
                        .finish(grpc_code(trailers).unwrap_or(tonic::Code::Unknown));
                }
            }
            Some(Err(status)) => this.outcome.finish(status.code()),
            None => this.outcome.finish(tonic::Code::Unknown),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
