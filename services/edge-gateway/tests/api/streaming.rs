//! Server streaming: Server-Sent Events or newline-delimited JSON, errors as a final event.

use serde_json::{Value, json};

use crate::support::{Harness, problem};

async fn body_of(response: reqwest::Response) -> (String, String) {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (
        content_type,
        response.text().await.expect("the stream ends"),
    )
}

/// `(event, data)` of each SSE event.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = "message".to_owned();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_owned();
                } else if let Some(payload) = line.strip_prefix("data: ") {
                    data.push_str(payload);
                }
            }
            (
                event,
                serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}")),
            )
        })
        .collect()
}

#[tokio::test]
async fn server_streams_are_server_sent_events_when_asked() {
    let h = Harness::start().await;
    let response = h
        .get("/v1/count/3")
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let (content_type, text) = body_of(response).await;
    assert_eq!(content_type, "text/event-stream");
    let events = sse_events(&text);
    let ids: Vec<&str> = events
        .iter()
        .filter(|(e, _)| e == "message")
        .map(|(_, d)| d["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["0", "1", "2"]);
    assert_eq!(
        events[0].1["big"], "9007199254740992",
        "ProtoJSON in each event"
    );
    assert_eq!(events.last().map(|(e, _)| e.as_str()), Some("done"));
}

#[tokio::test]
async fn server_streams_are_ndjson_by_default() {
    let h = Harness::start().await;
    let response = h.get("/v1/count/2").send().await.expect("answers");
    let (content_type, text) = body_of(response).await;
    assert_eq!(content_type, "application/x-ndjson");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"id": "0", "big": "9007199254740992"}),
            json!({"id": "1", "big": "9007199254740993"})
        ]
    );
}

#[tokio::test]
async fn an_error_mid_stream_is_a_final_error_event() {
    let h = Harness::start().await;
    let response = h
        .get("/v1/count/5?failAt=2")
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let events = sse_events(&body_of(response).await.1);
    assert_eq!(events.len(), 3, "{events:?}");
    let (event, problem) = &events[2];
    assert_eq!(event, "error");
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["code"], "RATE_LIMIT");
    assert_eq!(problem["detail"], "quota used up");
    assert_eq!(problem["requestId"], request_id.as_str());

    let response = h.get("/v1/count/5?failAt=1").send().await.expect("answers");
    let text = body_of(response).await.1;
    let last: Value = serde_json::from_str(text.lines().last().expect("lines")).expect("JSON");
    assert_eq!(last["error"]["code"], "RATE_LIMIT", "{text}");
}

#[tokio::test]
async fn an_error_before_the_first_message_is_a_plain_problem() {
    let h = Harness::start().await;
    let (status, doc) = problem(
        h.get("/v1/count/5?failAt=-1")
            .header("accept", "text/event-stream"),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(doc["code"], "AUTHZ");
}

#[tokio::test]
async fn a_generated_streaming_service_answers_on_both_bindings() {
    let h = Harness::start().await;
    let t = h.tenant;
    let post = h
        .post(
            &format!("/v1/tenants/{t}/ai/completions:stream"),
            &json!({ "prompt": "hello brave world" }),
        )
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("answers");
    let events = sse_events(&body_of(post).await.1);
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d["delta"].as_str())
        .collect();
    assert_eq!(deltas, ["hello", "brave", "world"]);
    let last = &events[events.len() - 2].1;
    assert_eq!(last["finishReason"], "FINISH_REASON_STOP");
    assert_eq!(last["usage"]["costMicros"], "9007199254740993");

    // The GET binding, for EventSource: fields from the query.
    let get = h
        .get(&format!(
            "/v1/tenants/{t}/ai/completions:stream?prompt=one+two&maxTokens=5"
        ))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("answers");
    let events = sse_events(&body_of(get).await.1);
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d["delta"].as_str())
        .collect();
    assert_eq!(deltas, ["one", "two"]);

    let failing = h
        .get(&format!(
            "/v1/tenants/{t}/ai/completions:stream?prompt=a+fail"
        ))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("answers");
    let events = sse_events(&body_of(failing).await.1);
    let (event, problem) = events.last().expect("events");
    assert_eq!(
        (event.as_str(), problem["status"].as_u64()),
        ("error", Some(503))
    );
}

/// The `id:` lines of an SSE body, in order.
fn sse_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_streamed_message_with_an_event_id_carries_it_as_the_sse_id_for_resuming() {
    let h = Harness::start().await;
    let response = h
        .get("/v1/watch/3")
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let (_, text) = body_of(response).await;
    assert_eq!(sse_ids(&text), ["ev-0", "ev-1", "ev-2"], "{text}");
    // Messages without an `event_id` field get no id line.
    let (_, count) = body_of(
        h.get("/v1/count/2")
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("answers"),
    )
    .await;
    assert!(sse_ids(&count).is_empty(), "{count}");
}

#[tokio::test]
async fn a_long_lived_stream_is_kept_alive_through_quiet_periods_and_others_time_out() {
    let routes = crate::support::ROUTES
        .replace("timeout_ms: 3000", "timeout_ms: 150")
        .replace(
            "GetAnyTenantThing: { tenant_match: false }",
            "GetAnyTenantThing: { tenant_match: false }\n      Watch: { long_lived: true }",
        );
    let h = Harness::with_routes(&routes).await;
    let response = h
        .get("/v1/watch/2?pause_ms=500")
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("answers");
    let (_, text) = body_of(response).await;
    assert_eq!(sse_ids(&text), ["ev-0", "ev-1"], "{text}");
    assert!(text.contains(": keep-alive\n\n"), "{text}");
    assert!(text.ends_with("event: done\ndata: {}\n\n"), "{text}");
    assert!(!text.contains("event: error"), "{text}");
    h.stop().await;

    // The same quiet period on an ordinary stream is a timeout error event.
    let h = Harness::with_routes(
        &crate::support::ROUTES.replace("timeout_ms: 3000", "timeout_ms: 150"),
    )
    .await;
    let (_, text) = body_of(
        h.get("/v1/watch/2?pause_ms=500")
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("answers"),
    )
    .await;
    assert!(text.contains("event: error"), "{text}");
    h.stop().await;
}
