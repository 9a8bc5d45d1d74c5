//! Raw routes: a body handed to a public method byte for byte (a signed webhook), with its own
//! size limit and rate limit, and no user credentials.

use std::path::Path;

use base64::Engine as _;
use keel_edge_gateway::Loaded;
use keel_edge_gateway::config::ConfigError;
use keel_edge_gateway::router::Router;

use crate::support::{Harness, ROUTES, pool, problem};

fn routes_with_raw(max_body: usize, burst: u32) -> String {
    format!(
        "{ROUTES}raw_routes:\n  - path: /hooks/{{source}}\n    rpc: keel.test.v1.EchoService.ReceiveRaw\n    upstream: test\n    body_field: payload\n    headers: {{ x-signature: signature }}\n    max_body_bytes: {max_body}\n    rate_limit: {{ rate: 1, per_secs: 60, burst: {burst} }}\n"
    )
}

#[tokio::test]
async fn the_exact_bytes_header_and_path_reach_the_method_without_credentials() {
    let harness = Harness::with_routes(&routes_with_raw(1024, 10)).await;
    // Not JSON, not UTF-8, with the whitespace a signature covers.
    let body: &[u8] = b"  t=1,{\"a\": 1}\n\xff\x00 ";
    let response = harness
        .http
        .post(harness.url("/hooks/stripe"))
        .header("x-signature", "t=1,v1=abc")
        .header("content-type", "application/octet-stream")
        .body(body.to_vec())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let echoed: serde_json::Value = response.json().await.expect("json");
    assert_eq!(echoed["source"], "stripe");
    assert_eq!(echoed["signature"], "t=1,v1=abc");
    let payload = base64::engine::general_purpose::STANDARD
        .decode(echoed["payload"].as_str().expect("payload"))
        .expect("base64");
    assert_eq!(payload, body);
    harness.stop().await;
}

#[tokio::test]
async fn a_raw_route_has_its_own_body_limit_and_rate_limit_and_takes_no_query() {
    let harness = Harness::with_routes(&routes_with_raw(16, 2)).await;
    let post = |body: &'static [u8]| {
        harness
            .http
            .post(harness.url("/hooks/stripe"))
            .body(body.to_vec())
    };
    let (status, doc) = problem(post(b"0123456789abcdefX")).await;
    assert_eq!(status, 413, "{doc}");

    let (status, doc) = problem(
        harness
            .http
            .post(harness.url("/hooks/stripe?x=1"))
            .body("{}"),
    )
    .await;
    assert_eq!(status, 400, "{doc}");

    // An oversized body is refused before the rate limit; the 400 and this one spend the burst.
    let response = post(b"{}").send().await.expect("answered");
    assert_eq!(response.status(), 200);
    let (status, doc) = problem(post(b"{}")).await;
    assert_eq!(status, 429, "{doc}");
    harness.stop().await;
}

#[test]
fn a_raw_route_to_a_method_that_is_not_public_stops_start_up_at_its_line() {
    let config = crate::support::gateway_config_offline();
    let text = "upstreams:\n  a: { address: 127.0.0.1:1 }\nservices: {}\nraw_routes:\n  - path: /hooks/{id}\n    rpc: keel.test.v1.EchoService.Internal\n    upstream: a\n    body_field: blob\n";
    let loaded =
        Loaded::from_parts(config, text, Path::new("routes.yaml")).expect("shape is valid");
    let err = Router::build(&pool(), &loaded.routes, &loaded.routes_source).expect_err("refused");
    match &err {
        ConfigError::AtLine { line, .. } => assert_eq!(*line, 5, "{err}"),
        other => panic!("no line: {other}"),
    }
    assert!(err.to_string().contains("is not public"), "{err}");
}
