//! The status layer: every error raised by the layers below reaches the client (and the metrics)
//! as a gRPC status, never as a broken stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::body::Body;
use tower::{BoxError, Layer, Service};

use super::admission::Overloaded;
use super::deadline::Aborted;

#[derive(Clone)]
pub(super) struct StatusLayer {
    domain: Arc<str>,
}

impl StatusLayer {
    /// `domain` is the error domain of the statuses it makes (see [`crate::Error::into_status`]).
    pub(super) fn new(domain: Arc<str>) -> StatusLayer {
        StatusLayer { domain }
    }
}

impl<S> Layer<S> for StatusLayer {
    type Service = StatusService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        StatusService {
            inner,
            domain: self.domain.clone(),
            not_ready: None,
        }
    }
}

pub(super) struct StatusService<S> {
    inner: S,
    domain: Arc<str>,
    /// A `poll_ready` failure, answered as a status by the next `call`.
    not_ready: Option<BoxError>,
}

impl<S: Clone> Clone for StatusService<S> {
    fn clone(&self) -> Self {
        StatusService {
            inner: self.inner.clone(),
            domain: self.domain.clone(),
            not_ready: None,
        }
    }
}

impl<S, B, RB> Service<Request<B>> for StatusService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.not_ready.is_none()
            && let Err(err) = ready!(self.inner.poll_ready(cx))
        {
            self.not_ready = Some(err.into());
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let domain = self.domain.clone();
        if let Some(err) = self.not_ready.take() {
            let response = error_response(&domain, err);
            return Box::pin(async move { Ok(response) });
        }
        let response = self.inner.call(request);
        Box::pin(async move {
            match response.await {
                Ok(response) => Ok(response.map(Body::new)),
                Err(err) => Ok(error_response(&domain, err.into())),
            }
        })
    }
}

/// Every error a layer can raise, as the status a client should see. Unknown errors are
/// INTERNAL, logged once by `Error::internal` and never described to the client.
fn error_response(domain: &str, err: BoxError) -> Response<Body> {
    let status = if err.is::<tower::timeout::error::Elapsed>() {
        tonic::Status::deadline_exceeded("the request took longer than the server allows")
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        crate::Error::unavailable("the server is overloaded, retry later").into_status_in(domain)
    } else if let Some(overloaded) = err.downcast_ref::<Overloaded>() {
        crate::Error::unavailable(overloaded.to_string())
            .with_retry_after(overloaded.retry_after)
            .into_status_in(domain)
    } else if err.is::<Aborted>() {
        crate::Error::unavailable("the server is shutting down, retry").into_status_in(domain)
    } else {
        match err.downcast::<tonic::Status>() {
            Ok(status) => *status,
            Err(err) => match err.downcast::<crate::Error>() {
                Ok(error) => error.into_status_in(domain),
                Err(err) => crate::Error::internal(anyhow::anyhow!(err)).into_status_in(domain),
            },
        }
    };
    status.into_http()
}
