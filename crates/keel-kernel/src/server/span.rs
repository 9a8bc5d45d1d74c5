//! The trace span layer: one span per request, child of the caller's trace.

use std::task::{Context, Poll};

use http::Request;
use tower::{Layer, Service};
use tracing::Instrument;

use super::RequestId;
use crate::telemetry;

#[derive(Clone, Copy)]
pub(super) struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

#[derive(Clone)]
pub(super) struct TraceService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for TraceService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.uri().path();
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(RequestId::as_str)
            .unwrap_or_default();
        let span = tracing::info_span!(
            "grpc.request",
            otel.name = method,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = method,
            request_id,
            tenant_id = tracing::field::Empty,
            user_id = tracing::field::Empty,
            grpc.code = tracing::field::Empty,
        );
        telemetry::set_parent(&span, telemetry::extract_grpc(request.headers()));
        // Entered for `call` too: layers below may do their work (and record on the span) here.
        let _entered = span.enter();
        self.inner.call(request).instrument(span.clone())
    }
}
