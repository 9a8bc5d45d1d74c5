//! The sender against a real local HTTP server.
#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use keel_webhooks::address::AddressRefusal;
use keel_webhooks::signature::{self, WebhookSecret};
use keel_webhooks::{
    AddressPolicy, AttemptFailure, Channel, OutboundMessage, Sender, SenderConfig,
};

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// An endpoint whose behaviour depends on the path, recording every request it gets.
struct TestEndpoint {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl TestEndpoint {
    async fn start() -> TestEndpoint {
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(Received {
                    path: uri.path().to_owned(),
                    headers,
                    body,
                });
                respond(uri.path()).await
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestEndpoint { addr, received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn hits(&self, path: &str) -> usize {
        self.received().iter().filter(|r| r.path == path).count()
    }
}

async fn respond(path: &str) -> Response {
    if path.starts_with("/bot") {
        return (StatusCode::OK, r#"{"ok":true,"result":{"message_id":7}}"#).into_response();
    }
    match path {
        "/redirect" => (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", "/target")],
            "",
        )
            .into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, "late").into_response()
        }
        "/big-error" => (StatusCode::INTERNAL_SERVER_ERROR, "E".repeat(100_000)).into_response(),
        _ => (StatusCode::OK, "ok").into_response(),
    }
}

fn sender(policy: AddressPolicy) -> Sender {
    Sender::new(SenderConfig {
        policy,
        timeout: Duration::from_millis(800),
        max_excerpt_bytes: 64,
        ..SenderConfig::default()
    })
    .unwrap()
}

fn message() -> OutboundMessage {
    OutboundMessage {
        id: "msg_2b7Yx".into(),
        event_type: "tenancy.member.added".into(),
        occurred_at: Utc::now(),
        data: serde_json::json!({"user_id": "u1", "名前": "テスト"}),
        summary: "Kim joined the tenant".into(),
    }
}

#[tokio::test]
async fn a_signed_message_reaches_a_local_endpoint_and_verifies_there() {
    let endpoint = TestEndpoint::start().await;
    let old = WebhookSecret::generate();
    let new = WebhookSecret::generate();
    let channel = Channel::Webhook {
        url: endpoint.url("/hook"),
        secrets: vec![new.clone(), old.clone()],
    };
    let now = Utc::now().timestamp();
    let attempt = sender(AddressPolicy::allowing_loopback())
        .send(&channel.prepare(&message(), now))
        .await;
    assert!(attempt.succeeded(), "{attempt:?}");
    assert_eq!(attempt.status, Some(200));
    assert_eq!(attempt.response_excerpt, "ok");
    assert_eq!(attempt.remote_addr, Some(endpoint.addr));

    let received = endpoint.received();
    assert_eq!(received.len(), 1);
    let header = |name: &str| received[0].headers[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/json");
    // The receiver, knowing either secret, verifies what arrived on the wire.
    for secret in [old, new] {
        signature::verify(
            &[secret],
            &header("webhook-id"),
            &header("webhook-timestamp"),
            &header("webhook-signature"),
            &received[0].body,
            Utc::now().timestamp(),
            300,
        )
        .unwrap();
    }
}

#[tokio::test]
async fn private_destinations_are_refused_before_any_connection() {
    let endpoint = TestEndpoint::start().await;
    let port = endpoint.addr.port();
    let public_only = sender(AddressPolicy::public_only());
    let cases = [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"), // through the resolver
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://2130706433:{port}/hook"), // 127.0.0.1 as one number
        format!("http://0x7f.1:{port}/hook"),
    ];
    for url in cases {
        let channel = Channel::Slack { url: url.clone() };
        let attempt = public_only.send(&channel.prepare(&message(), 0)).await;
        match attempt.failure {
            Some(AttemptFailure::Refused { reason, .. }) => {
                assert_eq!(reason, AddressRefusal::Loopback, "{url}")
            }
            other => panic!("{url}: expected a refusal, got {other:?}"),
        }
        assert!(attempt.status.is_none());
        let checked = public_only.check_url(&url).await;
        assert!(
            matches!(checked, Err(AttemptFailure::Refused { .. })),
            "{url}: {checked:?}"
        );
    }
    let metadata = public_only
        .check_url("http://169.254.169.254/latest/meta-data/")
        .await;
    assert!(matches!(
        metadata,
        Err(AttemptFailure::Refused {
            reason: AddressRefusal::LinkLocal,
            ..
        })
    ));
    assert!(
        endpoint.received().is_empty(),
        "nothing reached the endpoint"
    );

    // The same URLs are fine once the operator allows loopback.
    let allowed = sender(AddressPolicy::allowing_loopback());
    let channel = Channel::Slack {
        url: format!("http://localhost:{port}/hook"),
    };
    let attempt = allowed.send(&channel.prepare(&message(), 0)).await;
    assert!(attempt.succeeded(), "{attempt:?}");
    assert!(allowed.check_url(&endpoint.url("/hook")).await.is_ok());
}

#[tokio::test]
async fn redirects_are_reported_and_not_followed() {
    let endpoint = TestEndpoint::start().await;
    let channel = Channel::Slack {
        url: endpoint.url("/redirect"),
    };
    let attempt = sender(AddressPolicy::allowing_loopback())
        .send(&channel.prepare(&message(), 0))
        .await;
    assert_eq!(attempt.status, Some(307));
    assert_eq!(
        attempt.failure,
        Some(AttemptFailure::Redirect {
            status: 307,
            location: "/target".into()
        })
    );
    assert_eq!(endpoint.hits("/target"), 0);
}

#[tokio::test]
async fn a_slow_endpoint_times_out_and_a_closed_port_fails_to_connect() {
    let endpoint = TestEndpoint::start().await;
    let sender = sender(AddressPolicy::allowing_loopback());
    let slow = Channel::Slack {
        url: endpoint.url("/slow"),
    };
    let attempt = sender.send(&slow.prepare(&message(), 0)).await;
    assert_eq!(attempt.failure, Some(AttemptFailure::Timeout));
    assert!(attempt.latency < Duration::from_secs(4));

    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let closed = Channel::Slack {
        url: format!("http://127.0.0.1:{closed_port}/"),
    };
    let attempt = sender.send(&closed.prepare(&message(), 0)).await;
    assert!(
        matches!(attempt.failure, Some(AttemptFailure::Connect(_))),
        "{attempt:?}"
    );
}

#[tokio::test]
async fn only_an_excerpt_of_a_large_answer_is_kept() {
    let endpoint = TestEndpoint::start().await;
    let channel = Channel::Slack {
        url: endpoint.url("/big-error"),
    };
    let attempt = sender(AddressPolicy::allowing_loopback())
        .send(&channel.prepare(&message(), 0))
        .await;
    assert_eq!(attempt.failure, Some(AttemptFailure::Status(500)));
    assert_eq!(attempt.response_excerpt, "E".repeat(64));
}

#[tokio::test]
async fn slack_and_telegram_messages_arrive_in_their_formats() {
    let endpoint = TestEndpoint::start().await;
    let sender = sender(AddressPolicy::allowing_loopback());
    let slack = Channel::Slack {
        url: endpoint.url("/services/T0/B0/secret"),
    };
    let telegram = Channel::Telegram {
        api_base: endpoint.url(""),
        bot_token: "4242:AAH-token_x".into(),
        chat_id: "-100500".into(),
    };
    for channel in [&slack, &telegram] {
        channel.validate().unwrap();
        let attempt = sender.send(&channel.prepare(&message(), 0)).await;
        assert!(attempt.succeeded(), "{} {attempt:?}", channel.kind());
    }
    let received = endpoint.received();
    let slack_body: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(received[0].path, "/services/T0/B0/secret");
    assert_eq!(slack_body["text"], "Kim joined the tenant");
    assert_eq!(slack_body["blocks"][0]["type"], "section");
    let telegram_body: serde_json::Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(received[1].path, "/bot4242:AAH-token_x/sendMessage");
    assert_eq!(telegram_body["chat_id"], "-100500");
    assert!(
        telegram_body["text"]
            .as_str()
            .unwrap()
            .contains("Kim joined")
    );
}
