//! A fake LLM provider for tests: an axum server on port 0 speaking the OpenAI chat completions
//! API (`POST /v1/chat/completions`, streamed as SSE or not) and Anthropic's messages API
//! (`POST /v1/messages`), with a fault chosen per request, and a record of every request it got.
//!
//! Its answer is deterministic: `Fake answer:` followed by the words of the last user message,
//! one streamed chunk (and one "token") per word, stopped at `max_tokens`. It reports usage as
//! the number of whitespace-separated words of all messages (prompt) and of the chunks it sent
//! (completion).
//!
//! Faults, by a marker in the last user message (`[fault:cut=2]`), or for every request with
//! [`FakeLlm::set_fault`] (a whole deployment down):
//! - `cut=N`: N chunks, then the connection is dropped (no finish, no `[DONE]`);
//! - `stall`: headers, then nothing; `stall_after=N`: N chunks, then nothing;
//! - `malformed`: the first chunk is not JSON;
//! - `no_usage`: a complete answer without the usage chunk;
//! - `error_after_first`: one chunk, then an error event;
//! - `429`: HTTP 429 with `Retry-After: 1`; `500`: HTTP 500.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};

/// A fault the fake injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    CutAfter(usize),
    Stall,
    StallAfter(usize),
    Malformed,
    NoUsage,
    ErrorAfterFirst,
    RateLimited,
    ServerError,
}

impl Fault {
    /// The marker that selects this fault when put in the last user message.
    pub fn marker(&self) -> String {
        let name = match self {
            Fault::CutAfter(n) => format!("cut={n}"),
            Fault::Stall => "stall".into(),
            Fault::StallAfter(n) => format!("stall_after={n}"),
            Fault::Malformed => "malformed".into(),
            Fault::NoUsage => "no_usage".into(),
            Fault::ErrorAfterFirst => "error_after_first".into(),
            Fault::RateLimited => "429".into(),
            Fault::ServerError => "500".into(),
        };
        format!("[fault:{name}]")
    }

    fn parse(text: &str) -> Option<Fault> {
        let start = text.find("[fault:")? + "[fault:".len();
        let name = &text[start..start + text[start..].find(']')?];
        let count = |prefix: &str| name.strip_prefix(prefix).and_then(|n| n.parse().ok());
        Some(match name {
            "stall" => Fault::Stall,
            "malformed" => Fault::Malformed,
            "no_usage" => Fault::NoUsage,
            "error_after_first" => Fault::ErrorAfterFirst,
            "429" => Fault::RateLimited,
            "500" => Fault::ServerError,
            _ => {
                if let Some(n) = count("cut=") {
                    Fault::CutAfter(n)
                } else {
                    Fault::StallAfter(count("stall_after=")?)
                }
            }
        })
    }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `/v1/chat/completions` or `/v1/messages`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    /// Every message's text, and Anthropic's `system`, joined: what the model was shown.
    pub fn prompt_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(system) = self.body.get("system").and_then(Value::as_str) {
            parts.push(system.to_owned());
        }
        for message in messages(&self.body) {
            parts.push(message.1);
        }
        parts.join("\n")
    }
}

#[derive(Default)]
struct Shared {
    requests: Vec<Recorded>,
    fault: Option<Fault>,
}

/// The fake provider, serving until dropped.
pub struct FakeLlm {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Handle = Arc<Mutex<Shared>>;

fn lock(shared: &Handle) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeLlm {
    pub async fn start() -> FakeLlm {
        let shared: Handle = Arc::default();
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake LLM");
        let addr = listener.local_addr().expect("fake LLM address");
        // Every frame is its own small write: without TCP_NODELAY, Nagle's algorithm would hold
        // each one until the client's delayed ACK (40 ms) on a reused connection.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeLlm {
            addr,
            shared,
            server,
        }
    }

    /// The base URL adapters append their path to (`http://127.0.0.1:<port>/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Inject `fault` into every request (None: only markers choose).
    pub fn set_fault(&self, fault: Option<Fault>) {
        lock(&self.shared).fault = fault;
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared).requests.len()
    }
}

/// (role, text) of every message of a request body.
fn messages(body: &Value) -> Vec<(String, String)> {
    body.get("messages")
        .and_then(Value::as_array)
        .map(|messages| {
            messages
                .iter()
                .map(|m| {
                    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
                    let text = match m.get("content") {
                        Some(Value::String(text)) => text.clone(),
                        Some(Value::Array(blocks)) => blocks
                            .iter()
                            .filter_map(|b| b.get("text").and_then(Value::as_str))
                            .collect::<Vec<_>>()
                            .join(""),
                        _ => String::new(),
                    };
                    (role.to_owned(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the fake answers a request with.
struct Plan {
    words: Vec<String>,
    prompt_tokens: usize,
    max_tokens: usize,
    fault: Option<Fault>,
    stream: bool,
    model: String,
}

fn plan(shared: &Handle, path: &str, headers: HeaderMap, body: Value) -> Plan {
    let all = messages(&body);
    let last_user = all
        .iter()
        .rev()
        .find(|(role, _)| role == "user")
        .map(|(_, text)| text.clone())
        .unwrap_or_default();
    let system_words = body
        .get("system")
        .and_then(Value::as_str)
        .map_or(0, |s| s.split_whitespace().count());
    let prompt_tokens = all
        .iter()
        .map(|(_, text)| text.split_whitespace().count())
        .sum::<usize>()
        + system_words;
    let mut guard = lock(shared);
    let fault = guard.fault.or_else(|| Fault::parse(&last_user));
    guard.requests.push(Recorded {
        path: path.to_owned(),
        headers,
        body: body.clone(),
    });
    drop(guard);
    let mut words = vec!["Fake".to_owned(), " answer:".to_owned()];
    words.extend(
        last_user
            .split_whitespace()
            .filter(|w| !w.starts_with("[fault:"))
            .map(|w| format!(" {w}")),
    );
    Plan {
        words,
        prompt_tokens,
        max_tokens: body
            .get("max_tokens")
            .and_then(Value::as_u64)
            .map_or(usize::MAX, |n| n as usize),
        fault,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("fake")
            .to_owned(),
    }
}

fn refusal(fault: Option<Fault>) -> Option<Response> {
    match fault {
        Some(Fault::RateLimited) => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                r#"{"error":{"message":"rate limited","type":"rate_limit"}}"#,
            )
                .into_response(),
        ),
        Some(Fault::ServerError) => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":{"message":"boom","type":"server_error"}}"#,
            )
                .into_response(),
        ),
        _ => None,
    }
}

/// One SSE frame.
fn frame(event: Option<&str>, data: &str) -> String {
    match event {
        Some(event) => format!("event: {event}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

type Frames = BoxStream<'static, Result<String, std::io::Error>>;

/// The streamed body: `content` frames (one per word, at most `max_tokens`), then `ending`
/// frames, with the plan's fault applied.
fn sse(plan: &Plan, content: Vec<String>, ending: Vec<String>, error_frame: String) -> Response {
    let frames: Frames = match plan.fault {
        Some(Fault::CutAfter(n)) => {
            let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut");
            stream::iter(content.into_iter().take(n).map(Ok))
                .chain(stream::once(async move { Err(cut) }))
                .boxed()
        }
        Some(Fault::Stall) => stream::pending().boxed(),
        Some(Fault::StallAfter(n)) => stream::iter(content.into_iter().take(n).map(Ok))
            .chain(stream::pending())
            .boxed(),
        Some(Fault::Malformed) => stream::iter(vec![Ok("data: {not json\n\n".to_owned())]).boxed(),
        Some(Fault::ErrorAfterFirst) => {
            stream::iter(content.into_iter().take(1).chain([error_frame]).map(Ok)).boxed()
        }
        _ => stream::iter(content.into_iter().chain(ending).map(Ok)).boxed(),
    };
    // Each frame its own write, so the client sees a real stream.
    let frames = frames.then(|frame| async move {
        tokio::task::yield_now().await;
        frame
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(frames))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn openai(
    State(shared): State<Handle>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let plan = plan(&shared, "/v1/chat/completions", headers, body.0);
    if let Some(refused) = refusal(plan.fault) {
        return refused;
    }
    let sent: Vec<String> = plan.words.iter().take(plan.max_tokens).cloned().collect();
    let finish = if sent.len() < plan.words.len() {
        "length"
    } else {
        "stop"
    };
    let usage = json!({
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": sent.len(),
        "total_tokens": plan.prompt_tokens + sent.len(),
    });
    if !plan.stream {
        return axum::Json(json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": plan.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": sent.concat()}, "finish_reason": finish}],
            "usage": usage,
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": plan.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let content: Vec<String> = sent
        .iter()
        .map(|word| frame(None, &chunk(json!({"content": word}), Value::Null)))
        .collect();
    let mut ending = vec![frame(None, &chunk(json!({}), json!(finish)))];
    if plan.fault != Some(Fault::NoUsage) {
        let usage_chunk = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                                 "model": plan.model, "choices": [], "usage": usage});
        ending.push(frame(None, &usage_chunk.to_string()));
    }
    ending.push(frame(None, "[DONE]"));
    let error = frame(
        None,
        r#"{"error":{"message":"upstream failed mid-stream","type":"server_error"}}"#,
    );
    sse(&plan, content, ending, error)
}

async fn anthropic(
    State(shared): State<Handle>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let plan = plan(&shared, "/v1/messages", headers, body.0);
    if let Some(refused) = refusal(plan.fault) {
        return refused;
    }
    let sent: Vec<String> = plan.words.iter().take(plan.max_tokens).cloned().collect();
    let stop = if sent.len() < plan.words.len() {
        "max_tokens"
    } else {
        "end_turn"
    };
    if !plan.stream {
        return axum::Json(json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": plan.model,
            "content": [{"type": "text", "text": sent.concat()}],
            "stop_reason": stop,
            "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": sent.len()},
        }))
        .into_response();
    }
    let input_tokens = if plan.fault == Some(Fault::NoUsage) {
        Value::Null
    } else {
        json!(plan.prompt_tokens)
    };
    let mut content = vec![frame(
        Some("message_start"),
        &json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant",
                "model": plan.model, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})
        .to_string(),
    )];
    content.push(frame(
        Some("content_block_start"),
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    ));
    // Faults count content chunks: the two opening frames always go out.
    let opening = content.len();
    content.extend(sent.iter().map(|word| {
        frame(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}})
                .to_string(),
        )
    }));
    let mut message_delta = json!({"type": "message_delta", "delta": {"stop_reason": stop}});
    if plan.fault != Some(Fault::NoUsage) {
        message_delta["usage"] = json!({"output_tokens": sent.len()});
    }
    let ending = vec![
        frame(
            Some("content_block_stop"),
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        frame(Some("message_delta"), &message_delta.to_string()),
        frame(Some("message_stop"), r#"{"type":"message_stop"}"#),
    ];
    let error = frame(
        Some("error"),
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    let plan = Plan {
        fault: match plan.fault {
            Some(Fault::CutAfter(n)) => Some(Fault::CutAfter(n + opening)),
            Some(Fault::StallAfter(n)) => Some(Fault::StallAfter(n + opening)),
            Some(Fault::ErrorAfterFirst) => Some(Fault::CutAfter(usize::MAX)),
            other => other,
        },
        ..plan
    };
    if plan.fault == Some(Fault::CutAfter(usize::MAX)) {
        // One text chunk, then the error event.
        let frames: Vec<String> = content
            .into_iter()
            .take(opening + 1)
            .chain([error])
            .collect();
        let plan = Plan {
            fault: None,
            ..plan
        };
        return sse(&plan, frames, Vec::new(), String::new());
    }
    sse(&plan, content, ending, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_select_faults() {
        for fault in [
            Fault::CutAfter(3),
            Fault::Stall,
            Fault::StallAfter(2),
            Fault::Malformed,
            Fault::NoUsage,
            Fault::ErrorAfterFirst,
            Fault::RateLimited,
            Fault::ServerError,
        ] {
            let text = format!("hello {} there", fault.marker());
            assert_eq!(Fault::parse(&text), Some(fault));
        }
        assert_eq!(Fault::parse("no marker"), None);
    }
}
