//! The request id layer: every request gets an id (the caller's, when sane) that the span, the
//! logs, the handler and the response all carry.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

/// The header carrying a request's id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request's id, in the request's extensions: `request.extensions().get::<RequestId>()`.
/// Taken from the caller's `x-request-id` when it is sane, else a new UUIDv7.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accept a caller's id only if it is short printable ASCII: it is logged and echoed. The
    /// edge gateway applies the same rule, so an id survives the hop unchanged.
    pub fn from_header(value: &HeaderValue) -> Option<RequestId> {
        let bytes = value.as_bytes();
        let sane =
            !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(u8::is_ascii_graphic);
        // Printable ASCII is always valid UTF-8.
        sane.then(|| RequestId(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// A new id (UUIDv7), for a request that came without a usable one.
    pub fn generate() -> RequestId {
        RequestId(uuid::Uuid::now_v7().to_string())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a request, from a handler.
pub fn request_id<T>(request: &tonic::Request<T>) -> Option<&RequestId> {
    request.extensions().get::<RequestId>()
}

#[derive(Clone, Copy)]
pub(super) struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

#[derive(Clone)]
pub(super) struct RequestIdService<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(RequestId::from_header)
            .unwrap_or_else(RequestId::generate);
        // Valid by construction: a UUID or printable ASCII.
        let header = HeaderValue::from_str(id.as_str()).ok();
        if let Some(header) = &header {
            request
                .headers_mut()
                .insert(REQUEST_ID_HEADER, header.clone());
        }
        request.extensions_mut().insert(id);
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            if let Some(header) = header {
                response.headers_mut().insert(REQUEST_ID_HEADER, header);
            }
            Ok(response)
        })
    }
}
