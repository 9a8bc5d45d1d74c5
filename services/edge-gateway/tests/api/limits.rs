//! GCRA rate limits: per IP on public routes, per tenant (or key, or user) elsewhere, from the
//! route table, answered with 429, `Retry-After` and `RateLimit-*`.

use keel_kernel::TenantId;
use keel_testkit::tokens::TokenSpec;

use crate::support::{Harness, ROUTES, problem_of};

fn routes() -> String {
    ROUTES.replace(
        "      GetAnyTenantThing: { tenant_match: false }",
        "      GetAnyTenantThing: { tenant_match: false }\n      GetThing: { rate_limit: { rate: 1, per_secs: 60, burst: 2 } }",
    ) + "rate_limits:\n  public: { rate: 1, per_secs: 60, burst: 1 }\n"
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_route_limit_allows_its_burst_then_answers_429() {
    let h = Harness::with_routes(&routes()).await;
    for remaining in ["1", "0"] {
        let response = h.get("/v1/things/a").send().await.expect("answers");
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-limit"), "2");
        assert_eq!(header(&response, "ratelimit-remaining"), remaining);
    }
    let response = h.get("/v1/things/a").send().await.expect("answers");
    let retry_after: u64 = header(&response, "retry-after")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&response, "ratelimit-remaining"), "0");
    let (status, doc) = problem_of(response).await;
    assert_eq!((status, doc["code"].as_str()), (429, Some("RATE_LIMIT")));

    // Another tenant has its own bucket; other routes are not limited by this one.
    let other = h
        .issuer
        .token(TokenSpec::any_user().tenant(TenantId::new()).perm("*"));
    let response = h
        .http
        .get(h.url("/v1/things/a"))
        .bearer_auth(other)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let response = h.get("/v1/things/special").send().await.expect("answers");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn public_routes_are_limited_per_client_address() {
    let h = Harness::with_routes(&routes()).await;
    let first = h.http.get(h.url("/v1/ping")).send().await.expect("answers");
    assert_eq!(first.status(), 200);
    let second = h.http.get(h.url("/v1/ping")).send().await.expect("answers");
    let (status, _) = problem_of(second).await;
    assert_eq!(status, 429);
}
