//! Every error leaves as RFC 7807 problem+json: upstream statuses by the canonical gRPC -> HTTP
//! table, and the gateway's own refusals.

use serde_json::json;

use crate::support::{Harness, ROUTES, problem};

#[tokio::test]
async fn grpc_codes_map_by_the_canonical_table() {
    let h = Harness::start().await;
    // (gRPC code, HTTP status, platform code, detail shown)
    let cases: &[(i32, u16, &str, &str)] = &[
        (1, 499, "UNAVAILABLE", "boom"),
        (2, 500, "INTERNAL", "internal error"),
        (3, 400, "VALIDATION", "boom"),
        (4, 504, "UNAVAILABLE", "boom"),
        (5, 404, "NOT_FOUND", "boom"),
        (6, 409, "CONFLICT", "boom"),
        (7, 403, "AUTHZ", "boom"),
        (8, 429, "RATE_LIMIT", "boom"),
        (9, 400, "FAILED_PRECONDITION", "boom"),
        (10, 409, "ABORTED", "boom"),
        (11, 400, "VALIDATION", "boom"),
        (12, 501, "INTERNAL", "boom"),
        (13, 500, "INTERNAL", "internal error"),
        (14, 503, "UNAVAILABLE", "boom"),
        (15, 500, "INTERNAL", "internal error"),
        (16, 401, "AUTHN", "boom"),
    ];
    for &(code, status, platform, detail) in cases {
        let (got, doc) =
            problem(h.post("/v1/fail", &json!({ "code": code, "message": "boom" }))).await;
        assert_eq!(got, status, "gRPC {code}: {doc}");
        assert_eq!(doc["code"], platform, "gRPC {code}: {doc}");
        assert_eq!(doc["detail"], detail, "gRPC {code}: {doc}");
        let kind = format!(
            "/docs#error-{}",
            platform.to_ascii_lowercase().replace('_', "-")
        );
        assert_eq!(doc["type"], kind.as_str(), "gRPC {code}");
    }
}

#[tokio::test]
async fn the_platform_code_in_error_info_wins_over_the_grpc_code() {
    let h = Harness::start().await;
    let (status, doc) = problem(h.post(
        "/v1/fail",
        &json!({ "code": 9, "message": "slug taken", "platformCode": "CONFLICT" }),
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(doc["code"], "CONFLICT");
    assert_eq!(doc["detail"], "slug taken");
}

#[tokio::test]
async fn field_violations_travel_with_json_field_names() {
    let h = Harness::start().await;
    let (status, doc) = problem(h.post(
        "/v1/fail",
        &json!({
            "code": 3,
            "message": "2 fields are invalid",
            "platformCode": "VALIDATION",
            "violations": [
                { "field": "platform_code", "description": "is unknown" },
                { "field": "password", "description": "too short" },
            ],
        }),
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        doc["violations"],
        json!([
            { "field": "platformCode", "description": "is unknown" },
            { "field": "password", "description": "too short" },
        ])
    );
}

#[tokio::test]
async fn resource_exhausted_carries_retry_after() {
    let h = Harness::start().await;
    let response = h
        .post(
            "/v1/fail",
            &json!({ "code": 8, "message": "quota", "retryAfterSecs": 3 }),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(response.headers()["retry-after"], "3");
    let (status, doc) = crate::support::problem_of(response).await;
    assert_eq!((status, doc["code"].as_str()), (429, Some("RATE_LIMIT")));
}

#[tokio::test]
async fn the_gateways_own_refusals_are_problems_too() {
    let h = Harness::start().await;
    let big = "x".repeat(5000);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("no route", h.get("/v1/nowhere"), 404, "NOT_FOUND"),
        ("a trailing slash", h.get("/v1/things/"), 404, "NOT_FOUND"),
        (
            "an empty segment",
            h.get("/v1/things//tags"),
            404,
            "NOT_FOUND",
        ),
        (
            "a method with no HTTP binding",
            h.get("/keel.test.v1.EchoService/Internal"),
            404,
            "NOT_FOUND",
        ),
        (
            "the wrong method",
            h.request(reqwest::Method::DELETE, "/v1/things/a"),
            405,
            "VALIDATION",
        ),
        (
            "a body over the limit",
            h.request(reqwest::Method::POST, "/v1/shelves/s1/things")
                .header("content-type", "application/json")
                .body(format!(r#"{{"name":"{big}"}}"#)),
            413,
            "VALIDATION",
        ),
        (
            "a body that is not JSON",
            h.request(reqwest::Method::POST, "/v1/shelves/s1/things")
                .header("content-type", "text/plain")
                .body("name=x"),
            415,
            "VALIDATION",
        ),
        (
            "JSON in another charset",
            h.request(reqwest::Method::POST, "/v1/shelves/s1/things")
                .header("content-type", "application/json; charset=latin1")
                .body("{}"),
            415,
            "VALIDATION",
        ),
    ];
    for (case, request, status, code) in cases {
        let (got, doc) = problem(request).await;
        assert_eq!(
            (got, doc["code"].as_str()),
            (status, Some(code)),
            "{case}: {doc}"
        );
    }
}

#[tokio::test]
async fn a_wrong_method_lists_the_allowed_ones() {
    let h = Harness::start().await;
    let response = h
        .request(reqwest::Method::PUT, "/v1/lookup/k")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    let response = h
        .request(reqwest::Method::DELETE, "/v1/things/a/tags")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.headers()["allow"], "GET, PUT");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_503() {
    let routes = ROUTES.replace(
        "test: { address: \"{upstream}\", timeout_ms: 3000, retries: 2 }",
        "test: { address: \"127.0.0.1:1\", timeout_ms: 2000, connect_timeout_ms: 200, retries: 1 }",
    );
    let h = Harness::with_routes(&routes).await;
    for request in [
        h.get("/v1/things/a"),
        h.post("/v1/shelves/s1/things", &json!({})),
    ] {
        let (status, doc) = problem(request).await;
        assert_eq!(status, 503, "{doc}");
        assert_eq!(doc["code"], "UNAVAILABLE");
        assert!(
            !doc["detail"].as_str().unwrap_or("").contains("tcp"),
            "no transport details: {doc}"
        );
    }
}

#[tokio::test]
async fn a_slow_upstream_is_a_504_at_its_timeout() {
    let routes = ROUTES.replace("timeout_ms: 3000", "timeout_ms: 300");
    let h = Harness::with_routes(&routes).await;
    let started = std::time::Instant::now();
    let (status, doc) = problem(h.get("/v1/slow/3000")).await;
    assert_eq!(status, 504, "{doc}");
    assert_eq!(doc["code"], "UNAVAILABLE");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "answered at the timeout"
    );
}

#[tokio::test]
async fn idempotent_calls_are_retried_and_others_are_not() {
    let h = Harness::start().await;
    // GET: two failures, two retries allowed.
    let got = h.ok(h.get("/v1/flaky/get-key?failures=2")).await;
    assert_eq!(got["attempts"], 3);
    // POST: one failure is final.
    let (status, _) = problem(h.post("/v1/flaky/post-key", &json!({ "failures": 1 }))).await;
    assert_eq!(status, 503);
    let got = h.ok(h.get("/v1/flaky/post-key?failures=1")).await;
    assert_eq!(got["attempts"], 2, "the POST reached the service once");
    // GET: more failures than retries.
    let (status, _) = problem(h.get("/v1/flaky/many?failures=5")).await;
    assert_eq!(status, 503);
    let got = h.ok(h.get("/v1/flaky/many?failures=5")).await;
    assert_eq!(got["attempts"], 6, "three attempts per GET");
}
