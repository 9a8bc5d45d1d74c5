//! Model providers: one trait, a stream of events per call, and the adapters (`local`, the
//! OpenAI-compatible chat completions API, Anthropic's messages API). The router (`router.rs`)
//! maps a model name to its deployments, falls back before the first streamed byte and keeps a
//! circuit breaker per deployment.
//!
//! Every adapter streams, also for the unary Complete: one code path, and the provider's usage
//! report arrives the same way in both.

pub mod anthropic;
pub mod breaker;
pub mod local;
pub mod openai;
pub mod router;
mod sse;

use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::domain::{ChatMessage, FinishReason};

pub use router::{Router, Started};

/// What a provider is asked.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    /// The provider's own model name.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
}

/// One piece of a provider's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    /// Generated text.
    Delta(String),
    /// The provider's token counts (either may come alone: Anthropic sends input tokens first).
    Usage {
        prompt_tokens: Option<i64>,
        completion_tokens: Option<i64>,
    },
    Finish(FinishReason),
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("timed out")]
    Timeout,
    #[error("rate limited (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    #[error("HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("malformed stream: {0}")]
    Malformed(String),
    #[error("stream failed: {0}")]
    Stream(String),
    #[error("no deployment of the model is available")]
    NoDeployment,
}

impl ProviderError {
    /// Whether the next deployment may serve the call (before its first byte): the provider is
    /// down, slow, overloaded or broken, not refusing this request for what it is.
    pub fn falls_back(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => *status >= 500 || *status == 408,
            ProviderError::Connect(_)
            | ProviderError::Timeout
            | ProviderError::RateLimited { .. }
            | ProviderError::Malformed(_)
            | ProviderError::Stream(_) => true,
            ProviderError::NoDeployment => false,
        }
    }
}

pub type EventStream = BoxStream<'static, Result<ProviderEvent, ProviderError>>;

/// A provider adapter.
pub trait Provider: Send + Sync + 'static {
    /// Start a streamed call: resolves once the provider has accepted it (response headers),
    /// then the events follow on the stream.
    fn start(
        &self,
        request: ProviderRequest,
    ) -> BoxFuture<'static, Result<EventStream, ProviderError>>;
}

/// An HTTP error status as a `ProviderError` (429's `Retry-After` in seconds kept).
fn status_error(
    status: reqwest::StatusCode,
    retry_after: Option<&str>,
    body: String,
) -> ProviderError {
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return ProviderError::RateLimited {
            retry_after: retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        };
    }
    ProviderError::Status {
        status: status.as_u16(),
        message: body.chars().take(200).collect(),
    }
}

/// Send a streamed call and check its status: a non-2xx answer becomes its `ProviderError`, a
/// 2xx answer's body comes back as SSE frames.
async fn send_streamed(
    call: reqwest::RequestBuilder,
) -> Result<BoxStream<'static, Result<sse::Frame, ProviderError>>, ProviderError> {
    let response = call.send().await.map_err(request_error)?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        return Err(status_error(status, retry_after.as_deref(), text));
    }
    Ok(sse::frames(response.bytes_stream().boxed()))
}

/// Frames to events, by an adapter's own reading of one frame.
fn frames_to_events(
    frames: impl futures::Stream<Item = Result<sse::Frame, ProviderError>> + Send + 'static,
    read: fn(&sse::Frame) -> Result<Vec<ProviderEvent>, ProviderError>,
) -> EventStream {
    frames
        .flat_map(move |frame| {
            let events: Vec<Result<ProviderEvent, ProviderError>> =
                match frame.and_then(|frame| read(&frame)) {
                    Ok(events) => events.into_iter().map(Ok).collect(),
                    Err(err) => vec![Err(err)],
                };
            futures::stream::iter(events)
        })
        .boxed()
}

fn request_error(err: reqwest::Error) -> ProviderError {
    if err.is_timeout() {
        ProviderError::Timeout
    } else if err.is_connect() {
        ProviderError::Connect(err.to_string())
    } else {
        ProviderError::Stream(err.to_string())
    }
}

/// An HTTP client for one provider.
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        // Small writes (a request's body after its headers) must not wait for a delayed ACK.
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|err| ProviderError::Connect(err.to_string()))
}

/// The API key named by `api_key_env`, read from the environment.
pub fn api_key(env: &str) -> Option<String> {
    if env.is_empty() {
        return None;
    }
    match std::env::var(env) {
        Ok(key) if !key.trim().is_empty() => Some(key.trim().to_owned()),
        _ => {
            tracing::warn!(variable = env, "the provider's API key variable is not set");
            None
        }
    }
}
