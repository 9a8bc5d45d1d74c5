//! Server-streaming RPCs over HTTP: Server-Sent Events when the client accepts
//! `text/event-stream`, newline-delimited JSON otherwise.
//!
//! The first message is awaited before answering, so a call that fails at once gets a proper
//! problem+json status. After that the status is 200 and a failure mid-stream is a final error
//! event carrying the problem document (`event: error` in SSE, `{"error": {...}}` in NDJSON).
//! SSE ends with `event: done`, so an `EventSource` knows not to reconnect.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use prost_reflect::{DynamicMessage, FieldDescriptor};
use tonic::codec::Streaming;

use crate::problem::Problem;
use crate::transcode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sse,
    Ndjson,
}

impl Format {
    pub fn negotiate(accept: Option<&HeaderValue>) -> Format {
        let wants_sse = accept.and_then(|v| v.to_str().ok()).is_some_and(|accept| {
            accept
                .split(',')
                .any(|t| t.trim().starts_with("text/event-stream"))
        });
        if wants_sse {
            Format::Sse
        } else {
            Format::Ndjson
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Sse => "text/event-stream",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    /// One message; in SSE with `id:` when the message carries an event id, so a reconnecting
    /// `EventSource` sends it back as `Last-Event-ID` and the stream resumes after it.
    fn message(self, json: &[u8], event_id: Option<&str>) -> Bytes {
        let mut out = Vec::with_capacity(json.len() + 8);
        if self == Format::Sse {
            if let Some(id) = event_id.filter(|id| is_sse_id(id)) {
                out.extend_from_slice(b"id: ");
                out.extend_from_slice(id.as_bytes());
                out.push(b'\n');
            }
            out.extend_from_slice(b"data: ");
        }
        out.extend_from_slice(json);
        out.extend_from_slice(if self == Format::Sse { b"\n\n" } else { b"\n" });
        Bytes::from(out)
    }

    fn error(self, problem: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(problem.len() + 24);
        match self {
            Format::Sse => {
                out.extend_from_slice(b"event: error\ndata: ");
                out.extend_from_slice(problem);
                out.extend_from_slice(b"\n\n");
            }
            Format::Ndjson => {
                out.extend_from_slice(b"{\"error\":");
                out.extend_from_slice(problem);
                out.extend_from_slice(b"}\n");
            }
        }
        Bytes::from(out)
    }

    /// Sent when a long-lived stream has been quiet for a while, so proxies and clients keep the
    /// connection: an SSE comment, or an empty NDJSON line.
    fn keep_alive(self) -> Bytes {
        match self {
            Format::Sse => Bytes::from_static(b": keep-alive\n\n"),
            Format::Ndjson => Bytes::from_static(b"\n"),
        }
    }

    fn done(self) -> Option<Bytes> {
        (self == Format::Sse).then(|| Bytes::from_static(b"event: done\ndata: {}\n\n"))
    }
}

/// Everything the body needs, owned (it outlives the handler).
pub struct StreamContext {
    pub format: Format,
    pub response_body: Option<FieldDescriptor>,
    /// Longest wait for the next message.
    pub idle: Duration,
    /// A long-lived stream (a watch): quiet periods are normal, so instead of failing after
    /// `idle`, a keep-alive is sent every `idle` and the stream goes on.
    pub long_lived: bool,
    /// The streamed message's top-level `event_id` string field, if it has one: the SSE `id:`.
    pub event_id: Option<FieldDescriptor>,
    pub upstream: String,
    pub request_id: HeaderValue,
}

/// How long a long-lived stream's first message is waited for before the response opens anyway.
const LONG_LIVED_FIRST_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

enum State {
    Next(Streaming<DynamicMessage>),
    First(DynamicMessage, Streaming<DynamicMessage>),
    /// A long-lived stream with nothing yet: the response opens with a keep-alive.
    Quiet(Streaming<DynamicMessage>),
    Finishing,
    Finished,
}

/// Wait for the first message, then answer 200 with a body that relays the rest. An immediate
/// failure is a problem response instead.
pub async fn respond(
    mut streaming: Streaming<DynamicMessage>,
    context: StreamContext,
) -> Result<Response, Problem> {
    // A long-lived watch may have nothing to say for a long time: it gets its 200 (and a first
    // keep-alive) after a short wait, not a 504 after the upstream timeout.
    let wait = if context.long_lived {
        context.idle.min(LONG_LIVED_FIRST_WAIT)
    } else {
        context.idle
    };
    let state = match tokio::time::timeout(wait, streaming.message()).await {
        Err(_) if context.long_lived => State::Quiet(streaming),
        Err(_) => {
            return Err(Problem::timeout(format!(
                "the {} service did not answer in time",
                context.upstream
            )));
        }
        Ok(Err(status)) => return Err(Problem::from_status(&status, &context.upstream)),
        Ok(Ok(Some(message))) => State::First(message, streaming),
        Ok(Ok(None)) => State::Finishing,
    };
    let format = context.format;
    let body = futures::stream::unfold((state, context), |(state, context)| async move {
        let (chunk, next) = match state {
            State::Finished => return None,
            State::Finishing => match context.format.done() {
                Some(done) => (done, State::Finished),
                None => return None,
            },
            State::First(message, streaming) => {
                (encode(&context, &message), State::Next(streaming))
            }
            State::Quiet(streaming) => (context.format.keep_alive(), State::Next(streaming)),
            State::Next(mut streaming) => {
                match tokio::time::timeout(context.idle, streaming.message()).await {
                    Ok(Ok(Some(message))) => (encode(&context, &message), State::Next(streaming)),
                    Ok(Ok(None)) => match context.format.done() {
                        Some(done) => (done, State::Finished),
                        None => return None,
                    },
                    Ok(Err(status)) => {
                        let problem = Problem::from_status(&status, &context.upstream);
                        (
                            context.format.error(&problem.to_json(&context.request_id)),
                            State::Finished,
                        )
                    }
                    Err(_) if context.long_lived => {
                        (context.format.keep_alive(), State::Next(streaming))
                    }
                    Err(_) => {
                        let problem = Problem::timeout(format!(
                            "the {} service stopped sending",
                            context.upstream
                        ));
                        (
                            context.format.error(&problem.to_json(&context.request_id)),
                            State::Finished,
                        )
                    }
                }
            }
        };
        Some((Ok::<Bytes, Infallible>(chunk), (next, context)))
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise hold events back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn encode(context: &StreamContext, message: &DynamicMessage) -> Bytes {
    let event_id = context
        .event_id
        .as_ref()
        .map(|field| message.get_field(field));
    let event_id = event_id.as_ref().and_then(|value| value.as_str());
    match transcode::response(context.response_body.as_ref(), message) {
        Ok(json) => context.format.message(&json, event_id),
        Err(err) => {
            tracing::error!(error = %err, "a streamed message could not be written as JSON");
            context
                .format
                .error(&Problem::internal().to_json(&context.request_id))
        }
    }
}

/// An id that fits on an SSE `id:` line: not empty, no line breaks, no NUL.
fn is_sse_id(id: &str) -> bool {
    !id.is_empty() && !id.contains(['\n', '\r', '\0'])
}

/// The `event_id` string field of a streamed message type, if it has one.
pub fn event_id_field(message: &prost_reflect::MessageDescriptor) -> Option<FieldDescriptor> {
    message
        .get_field_by_name("event_id")
        .filter(|field| field.kind() == prost_reflect::Kind::String && !field.is_list())
}
