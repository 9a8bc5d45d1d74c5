//! Attacks on the edge (issue 8): a spoofed client address, guessing credentials, and a public
//! route's rate limit dodged with many accounts.

use std::sync::atomic::Ordering;

use keel_kernel::TenantId;
use keel_testkit::tokens::TokenSpec;

use crate::support::{GOOD_KEY, Harness, ROUTES, problem};

#[tokio::test]
async fn a_client_cannot_choose_its_address_with_x_forwarded_for_or_the_gateways_own_header() {
    let h = Harness::start().await;
    for path in ["/v1/headers", "/v1/ping"] {
        let got = h
            .ok(h
                .get(path)
                .header("x-forwarded-for", "1.2.3.4")
                .header("x-real-ip", "5.6.7.8")
                .header("x-keel-client-ip", "6.6.6.6")
                .header("forwarded", "for=7.7.7.7"))
            .await;
        let metadata = got["metadata"].as_object().expect("a map");
        assert_eq!(
            metadata["x-keel-client-ip"], "127.0.0.1",
            "{path}: {metadata:?}"
        );
        for spoofed in ["x-forwarded-for", "x-real-ip", "forwarded"] {
            assert!(
                !metadata.contains_key(spoofed),
                "{path}: {spoofed} reached the service: {metadata:?}"
            );
        }
    }
}

#[tokio::test]
async fn behind_one_trusted_proxy_a_client_cannot_prepend_an_address() {
    let h = Harness::build(ROUTES, "  trusted_proxies: 1\n").await;
    let got = h
        .ok(h
            .get("/v1/headers")
            // The client sent `X-Forwarded-For: 6.6.6.6`; our proxy appended what it saw.
            .header("x-forwarded-for", "6.6.6.6, 203.0.113.9"))
        .await;
    assert_eq!(got["metadata"]["x-keel-client-ip"], "203.0.113.9");
    let got = h.ok(h.get("/v1/headers")).await;
    assert_eq!(
        got["metadata"]["x-keel-client-ip"], "127.0.0.1",
        "no chain: the peer"
    );
}

fn failed_auth_routes(burst: u32) -> String {
    format!("{ROUTES}rate_limits:\n  failed_auth: {{ rate: 1, per_secs: 3600, burst: {burst} }}\n")
}

#[tokio::test]
async fn guessing_api_keys_is_answered_429_before_identity_is_asked() {
    let h = Harness::with_routes(&failed_auth_routes(3)).await;
    for guess in 0..3 {
        let (status, doc) = problem(
            h.http
                .get(h.url("/v1/headers"))
                .header("x-api-key", format!("keel_ak_guess{guess}")),
        )
        .await;
        assert_eq!((status, doc["code"].as_str()), (401, Some("AUTHN")));
    }
    assert_eq!(h.exchanges.load(Ordering::SeqCst), 3);
    for guess in 3..10 {
        let (status, doc) = problem(
            h.http
                .get(h.url("/v1/headers"))
                .header("x-api-key", format!("keel_ak_guess{guess}")),
        )
        .await;
        assert_eq!(
            (status, doc["code"].as_str()),
            (429, Some("RATE_LIMIT")),
            "{doc}"
        );
    }
    assert_eq!(
        h.exchanges.load(Ordering::SeqCst),
        3,
        "identity was not asked about refused guesses"
    );
    // Forged bearer tokens from that address are refused the same way, before verification.
    let response = h
        .http
        .get(h.url("/v1/headers"))
        .bearer_auth("not.a.token")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn guessing_api_keys_in_parallel_does_not_outrun_the_failed_authentication_limit() {
    let h = Harness::with_routes(&failed_auth_routes(5)).await;
    let guesses = (0..40).map(|guess| {
        h.http
            .get(h.url("/v1/headers"))
            .header("x-api-key", format!("keel_ak_guess{guess}"))
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|response| response.expect("answers").status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    // Guesses in flight together may all pass the check before the first one fails (the check
    // costs no lock across the identity call); once they have failed, the address is cut off.
    let asked = h.exchanges.load(Ordering::SeqCst);
    assert_eq!(
        asked,
        statuses.iter().filter(|s| **s == 401).count(),
        "a 429 never reached identity"
    );
    let (status, _) = problem(
        h.http
            .get(h.url("/v1/headers"))
            .header("x-api-key", "keel_ak_one_more"),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(h.exchanges.load(Ordering::SeqCst), asked);
}

#[tokio::test]
async fn a_valid_credential_keeps_working_from_an_address_that_never_failed() {
    let h = Harness::with_routes(&failed_auth_routes(1)).await;
    for _ in 0..5 {
        h.ok(h.get("/v1/headers")).await;
        h.ok(h
            .http
            .get(h.url("/v1/headers"))
            .header("x-api-key", GOOD_KEY))
            .await;
    }
    // No credential at all on a protected route is no guess: 401 every time, never 429.
    for _ in 0..3 {
        let (status, _) = problem(h.http.get(h.url("/v1/headers"))).await;
        assert_eq!(status, 401);
    }
}

#[tokio::test]
async fn a_valid_token_on_a_public_route_does_not_buy_a_fresh_rate_limit_bucket() {
    let routes = format!(
        "{ROUTES}rate_limits:\n  public: {{ rate: 1, per_secs: 60, burst: 1 }}\n  tenant: {{ rate: 100, per_secs: 1, burst: 100 }}\n  user: {{ rate: 100, per_secs: 1, burst: 100 }}\n"
    );
    let h = Harness::with_routes(&routes).await;
    let first = h.http.get(h.url("/v1/ping")).send().await.expect("answers");
    assert_eq!(first.status(), 200);
    // Each account the attacker holds would otherwise be a bucket of its own.
    for account in 0..3 {
        let token = if account % 2 == 0 {
            h.issuer.token(TokenSpec::any_user())
        } else {
            h.issuer
                .token(TokenSpec::any_user().tenant(TenantId::new()).perm("*"))
        };
        let response = h
            .http
            .get(h.url("/v1/ping"))
            .bearer_auth(token)
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 429, "account {account}");
    }
}
