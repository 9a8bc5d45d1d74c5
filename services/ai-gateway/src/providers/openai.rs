//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`), streamed as SSE with
//! `stream_options.include_usage`, so the last chunk carries the provider's token counts. The same
//! adapter serves OpenAI, vLLM, Ollama, llama.cpp's server, LM Studio and OpenRouter.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::StreamExt;
use serde_json::{Value, json};

use super::{EventStream, Provider, ProviderError, ProviderEvent, ProviderRequest};
use crate::domain::FinishReason;

pub struct OpenAi {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
}

impl OpenAi {
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        connect_timeout: Duration,
    ) -> Result<OpenAi, ProviderError> {
        Ok(OpenAi {
            client: super::http_client(connect_timeout)?,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
        })
    }
}

fn body(request: &ProviderRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| json!({ "role": m.role.as_str(), "content": m.content }))
        .collect();
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    body
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// The events of one `data:` payload.
fn events_of(data: &str) -> Result<Vec<ProviderEvent>, ProviderError> {
    let chunk: Value = serde_json::from_str(data)
        .map_err(|err| ProviderError::Malformed(format!("a chunk is not JSON: {err}")))?;
    if let Some(error) = chunk.get("error") {
        return Err(ProviderError::Stream(error.to_string()));
    }
    let mut events = Vec::new();
    let choices = chunk.get("choices").and_then(Value::as_array);
    if let Some(choice) = choices.and_then(|c| c.first()) {
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str)
            && !text.is_empty()
        {
            events.push(ProviderEvent::Delta(text.to_owned()));
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            events.push(ProviderEvent::Finish(finish_reason(reason)));
        }
    } else if choices.is_none() && chunk.get("usage").is_none() {
        return Err(ProviderError::Malformed(
            "a chunk has neither choices nor usage".into(),
        ));
    }
    if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
        events.push(ProviderEvent::Usage {
            prompt_tokens: usage.get("prompt_tokens").and_then(Value::as_i64),
            completion_tokens: usage.get("completion_tokens").and_then(Value::as_i64),
        });
    }
    Ok(events)
}

impl Provider for OpenAi {
    fn start(
        &self,
        request: ProviderRequest,
    ) -> BoxFuture<'static, Result<EventStream, ProviderError>> {
        let mut call = self.client.post(&self.url).json(&body(&request));
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        Box::pin(async move {
            let frames = super::send_streamed(call).await?.take_while(|frame| {
                let done = matches!(frame, Ok(f) if f.data.trim() == "[DONE]");
                futures::future::ready(!done)
            });
            Ok(super::frames_to_events(frames, |frame| {
                events_of(&frame.data)
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_chunk_and_the_usage_chunk_are_read() {
        let events = events_of(r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}"#)
            .expect("ok");
        assert_eq!(events, vec![ProviderEvent::Delta("Hi".into())]);
        let events =
            events_of(r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#)
                .expect("ok");
        assert_eq!(
            events,
            vec![ProviderEvent::Usage {
                prompt_tokens: Some(5),
                completion_tokens: Some(2)
            }]
        );
    }

    #[test]
    fn a_chunk_that_is_not_json_is_malformed() {
        assert!(matches!(
            events_of("{oops"),
            Err(ProviderError::Malformed(_))
        ));
    }
}
