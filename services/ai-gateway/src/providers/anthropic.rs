//! Anthropic's messages API (`POST {base_url}/messages`), streamed as SSE: `message_start` carries
//! the input tokens, `content_block_delta` the text, `message_delta` the stop reason and the
//! output tokens, `message_stop` ends it; an `error` event fails the stream.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{EventStream, Provider, ProviderError, ProviderEvent, ProviderRequest};
use crate::domain::{ChatRole, FinishReason};

const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
}

impl Anthropic {
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        connect_timeout: Duration,
    ) -> Result<Anthropic, ProviderError> {
        Ok(Anthropic {
            client: super::http_client(connect_timeout)?,
            url: format!("{}/messages", base_url.trim_end_matches('/')),
            api_key,
        })
    }
}

/// System messages go to `system`; the rest alternate user/assistant as the API requires
/// (consecutive messages of one role are joined).
fn body(request: &ProviderRequest) -> Value {
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == ChatRole::System)
        .map(|m| m.content.as_str())
        .collect();
    let mut messages: Vec<(ChatRole, String)> = Vec::new();
    for message in request
        .messages
        .iter()
        .filter(|m| m.role != ChatRole::System)
    {
        match messages.last_mut() {
            Some((role, content)) if *role == message.role => {
                content.push_str("\n\n");
                content.push_str(&message.content);
            }
            _ => messages.push((message.role, message.content.clone())),
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, content)| json!({ "role": role.as_str(), "content": content }))
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": messages,
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if let Some(temperature) = request.temperature {
        // Anthropic's range is 0 to 1.
        body["temperature"] = json!(temperature.min(1.0));
    }
    body
}

fn events_of(event: &str, data: &str) -> Result<Vec<ProviderEvent>, ProviderError> {
    let parsed = || -> Result<Value, ProviderError> {
        serde_json::from_str(data)
            .map_err(|err| ProviderError::Malformed(format!("an event is not JSON: {err}")))
    };
    let kind = if event.is_empty() {
        parsed()?
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    } else {
        event.to_owned()
    };
    Ok(match kind.as_str() {
        "message_start" => {
            let value = parsed()?;
            vec![ProviderEvent::Usage {
                prompt_tokens: value
                    .pointer("/message/usage/input_tokens")
                    .and_then(Value::as_i64),
                completion_tokens: None,
            }]
        }
        "content_block_delta" => {
            let value = parsed()?;
            match value.pointer("/delta/text").and_then(Value::as_str) {
                Some(text) if !text.is_empty() => vec![ProviderEvent::Delta(text.to_owned())],
                _ => Vec::new(),
            }
        }
        "message_delta" => {
            let value = parsed()?;
            let mut events = Vec::new();
            if let Some(output) = value
                .pointer("/usage/output_tokens")
                .and_then(Value::as_i64)
            {
                events.push(ProviderEvent::Usage {
                    prompt_tokens: None,
                    completion_tokens: Some(output),
                });
            }
            if let Some(reason) = value.pointer("/delta/stop_reason").and_then(Value::as_str) {
                events.push(ProviderEvent::Finish(match reason {
                    "max_tokens" => FinishReason::Length,
                    "refusal" => FinishReason::ContentFilter,
                    _ => FinishReason::Stop,
                }));
            }
            events
        }
        "error" => return Err(ProviderError::Stream(data.chars().take(200).collect())),
        // ping, content_block_start/stop, message_stop
        _ => Vec::new(),
    })
}

impl Provider for Anthropic {
    fn start(
        &self,
        request: ProviderRequest,
    ) -> BoxFuture<'static, Result<EventStream, ProviderError>> {
        let mut call = self
            .client
            .post(&self.url)
            .header("anthropic-version", API_VERSION)
            .json(&body(&request));
        if let Some(key) = &self.api_key {
            call = call.header("x-api-key", key);
        }
        Box::pin(async move {
            let frames = super::send_streamed(call).await?;
            Ok(super::frames_to_events(frames, |frame| {
                events_of(&frame.event, &frame.data)
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_tokens_text_and_output_tokens_are_read() {
        let start = events_of(
            "message_start",
            r#"{"type":"message_start","message":{"usage":{"input_tokens":12,"output_tokens":1}}}"#,
        )
        .expect("ok");
        assert_eq!(
            start,
            vec![ProviderEvent::Usage {
                prompt_tokens: Some(12),
                completion_tokens: None
            }]
        );
        let delta = events_of(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        )
        .expect("ok");
        assert_eq!(delta, vec![ProviderEvent::Delta("Hi".into())]);
        let end = events_of(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":7}}"#,
        )
        .expect("ok");
        assert_eq!(
            end,
            vec![
                ProviderEvent::Usage {
                    prompt_tokens: None,
                    completion_tokens: Some(7)
                },
                ProviderEvent::Finish(FinishReason::Length)
            ]
        );
    }
}
