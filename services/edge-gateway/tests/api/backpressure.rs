//! Back-pressure at the edge: an upstream's in-flight limit queues a burst instead of refusing
//! it, sheds (503 + Retry-After) only what would wait too long, and replicas share the load.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use keel_testkit::tokens::TestIssuer;

use crate::support::{Harness, problem_of, start_upstream};

fn routes(upstream: &str) -> String {
    format!(
        "upstreams:\n  test: {{ {upstream}, timeout_ms: 5000 }}\nservices:\n  keel.test.v1.EchoService:\n    upstream: test\n"
    )
}

#[tokio::test]
async fn a_burst_beyond_the_in_flight_limit_queues_at_the_edge_and_every_call_succeeds() {
    let table = routes(r#"address: "{upstream}", max_in_flight: 2, queue_timeout_ms: 5000"#);
    let h = Harness::with_routes(&table).await;
    let started = Instant::now();
    let calls = (0..12).map(|_| h.get("/v1/slow/100").send());
    for response in futures::future::join_all(calls).await {
        assert_eq!(response.expect("answers").status(), 200);
    }
    // Two at a time, 100 ms each: at least six rounds. Only a lower bound: the queue worked.
    assert!(
        started.elapsed() >= Duration::from_millis(590),
        "{:?}: the limit did not hold calls back",
        started.elapsed()
    );
    h.stop().await;
}

#[tokio::test]
async fn what_would_wait_past_the_queue_timeout_is_shed_with_retry_after() {
    let table = routes(r#"address: "{upstream}", max_in_flight: 1, queue_timeout_ms: 100"#);
    let h = Harness::with_routes(&table).await;
    let first = h.get("/v1/slow/600").send();
    let later = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.get("/v1/slow/10").send().await
    };
    let (first, later) = tokio::join!(first, later);
    assert_eq!(first.expect("answers").status(), 200);
    let later = later.expect("answers");
    assert_eq!(
        later
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let (status, doc) = problem_of(later).await;
    assert_eq!(status, 503, "{doc}");
    assert_eq!(doc["code"], "UNAVAILABLE", "{doc}");
    assert!(
        doc["detail"].as_str().unwrap_or("").contains("busy"),
        "{doc}"
    );
    // Refused before the upstream saw it.
    assert_eq!(h.echo.calls.load(Ordering::SeqCst), 1);

    // With no queue at all, a second call is refused at once.
    let table = routes(r#"address: "{upstream}", max_in_flight: 1, max_queue: 0"#);
    let h2 = Harness::with_routes(&table).await;
    let (first, second) = tokio::join!(h2.get("/v1/slow/400").send(), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        (h2.get("/v1/slow/10").send().await, started.elapsed())
    });
    assert_eq!(first.expect("answers").status(), 200);
    let (second, waited) = second;
    assert_eq!(second.expect("answers").status(), 503);
    assert!(
        waited < Duration::from_millis(300),
        "shed without waiting: {waited:?}"
    );
    h.stop().await;
    h2.stop().await;
}

#[tokio::test]
async fn replicas_listed_under_addresses_share_the_calls() {
    let issuer = Arc::new(TestIssuer::start().await);
    let tenant = keel_kernel::TenantId::new();
    let (second, second_echo, _, _) = start_upstream(issuer, tenant).await;
    let table = routes(&format!(r#"addresses: ["{{upstream}}", "{second}"]"#));
    let h = Harness::with_routes(&table).await;
    for i in 0..40 {
        h.ok(h.get(&format!("/v1/things/t{i}"))).await;
    }
    let (one, two) = (
        h.echo.calls.load(Ordering::SeqCst),
        second_echo.calls.load(Ordering::SeqCst),
    );
    assert_eq!(one + two, 40);
    assert!(
        one > 0 && two > 0,
        "one replica took every call: {one} / {two}"
    );
    h.stop().await;
}

#[tokio::test]
async fn an_upstream_needs_one_address_or_a_list_naming_its_line() {
    let table = "upstreams:\n  test: { timeout_ms: 5000 }\nservices: {}\n";
    let err = keel_edge_gateway::Loaded::from_parts(
        crate::support::gateway_config_offline(),
        table,
        std::path::Path::new("routes.yaml"),
    )
    .expect_err("no address");
    let text = err.to_string();
    assert!(text.contains("routes.yaml line 2"), "{text}");
    assert!(text.contains("`address`"), "{text}");
}
