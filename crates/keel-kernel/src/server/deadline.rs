//! The deadline layer: bounds the server's work on a request, and aborts what is still running
//! when the shutdown grace period ends.

use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::Request;
use tokio_util::sync::CancellationToken;
use tower::{BoxError, Layer, Service};

/// A request still running when shutdown's grace period ends.
#[derive(Debug, thiserror::Error)]
#[error("aborted at shutdown")]
pub(super) struct Aborted;

#[derive(Clone)]
pub(super) struct DeadlineLayer {
    timeout: Duration,
    abort: CancellationToken,
}

impl DeadlineLayer {
    pub(super) fn new(timeout: Duration, abort: CancellationToken) -> DeadlineLayer {
        DeadlineLayer { timeout, abort }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            inner,
            timeout: self.timeout,
            abort: self.abort.clone(),
        }
    }
}

#[derive(Clone)]
pub(super) struct DeadlineService<S> {
    inner: S,
    timeout: Duration,
    abort: CancellationToken,
}

impl<S, B> Service<Request<B>> for DeadlineService<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    /// Bounds the time to the response headers: for a streaming response, not the stream. The
    /// caller's own `grpc-timeout` is enforced by tonic outside this stack.
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        let timeout = self.timeout;
        let abort = self.abort.clone();
        Box::pin(async move {
            tokio::select! {
                response = response => response.map_err(Into::into),
                () = tokio::time::sleep(timeout) => Err(tower::timeout::error::Elapsed::new().into()),
                () = abort.cancelled() => Err(Aborted.into()),
            }
        })
    }
}
