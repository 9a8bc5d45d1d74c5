//! Authentication, tenant enforcement, what reaches the upstream, API keys and entitlements.

use std::sync::atomic::Ordering;

use keel_kernel::TenantId;
use keel_proto::tenancy::v1::TenantState;
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use serde_json::json;

use crate::support::{GOOD_KEY, Harness, problem, problem_of};

#[tokio::test]
async fn bad_tokens_are_refused_with_401_problems() {
    let h = Harness::start().await;
    let spec = || TokenSpec::any_user().tenant(h.tenant).perm("*");
    let foreign = TestIssuer::start().await;
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no credentials", None),
        // Tampering grants `*`, so the original must not have it already.
        (
            "a tampered token",
            Some(format!(
                "Bearer {}",
                h.issuer
                    .tampered_token(TokenSpec::any_user().tenant(h.tenant))
            )),
        ),
        (
            "an expired token",
            Some(format!("Bearer {}", h.issuer.expired_token(spec()))),
        ),
        (
            "alg: none",
            Some(format!("Bearer {}", h.issuer.alg_none_token(spec()))),
        ),
        (
            "a key the issuer never published",
            Some(format!("Bearer {}", h.issuer.unknown_kid_token(spec()))),
        ),
        (
            "another issuer's token",
            Some(format!("Bearer {}", foreign.token(spec()))),
        ),
        (
            "a wrong audience",
            Some(format!("Bearer {}", h.issuer.wrong_audience_token(spec()))),
        ),
        (
            "a wrong issuer",
            Some(format!("Bearer {}", h.issuer.wrong_issuer_token(spec()))),
        ),
        (
            "not yet valid",
            Some(format!("Bearer {}", h.issuer.not_yet_valid_token(spec()))),
        ),
        ("garbage", Some("Bearer not.a.jwt".into())),
        ("another scheme", Some("Basic dXNlcjpwYXNz".into())),
        ("an empty bearer", Some("Bearer ".into())),
    ];
    for (case, authorization) in cases {
        let mut request = h.http.get(h.url("/v1/things/a"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("answers");
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{case}: {}",
            response.status()
        );
        let (status, doc) = problem_of(response).await;
        assert_eq!(
            (status, doc["code"].as_str()),
            (401, Some("AUTHN")),
            "{case}: {doc}"
        );
    }
    assert_eq!(h.echo.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn public_routes_need_no_token_and_ignore_a_bad_one() {
    let h = Harness::start().await;
    let got = h.ok(h.http.get(h.url("/v1/ping"))).await;
    assert!(got["metadata"].get("authorization").is_none());
    let expired = h.issuer.expired_token(TokenSpec::any_user());
    let got = h
        .ok(h.http.get(h.url("/v1/ping")).bearer_auth(expired))
        .await;
    assert!(
        got["metadata"].get("authorization").is_none(),
        "a bad token is dropped, not forwarded"
    );
    let got = h
        .ok(h.http.get(h.url("/v1/ping")).bearer_auth(&h.token))
        .await;
    assert_eq!(
        got["metadata"]["authorization"],
        format!("Bearer {}", h.token)
    );
}

#[tokio::test]
async fn a_path_tenant_must_be_the_tokens_tenant() {
    let h = Harness::start().await;
    let own = h.tenant;
    let other = TenantId::new();
    let got = h.ok(h.get(&format!("/v1/tenants/{own}/things/x"))).await;
    assert_eq!(got["tenantId"], own.to_string());

    let (status, doc) = problem(h.get(&format!("/v1/tenants/{other}/things/x"))).await;
    assert_eq!(
        (status, doc["code"].as_str()),
        (403, Some("AUTHZ")),
        "{doc}"
    );
    let upper = own.to_string().to_uppercase();
    let got = h.ok(h.get(&format!("/v1/tenants/{upper}/things/x"))).await;
    assert_eq!(
        got["tenantId"], upper,
        "any spelling of the same UUID is the same tenant"
    );

    let unscoped = h.issuer.token(TokenSpec::any_user().perm("*"));
    let (status, doc) = problem(
        h.http
            .get(h.url(&format!("/v1/tenants/{own}/things/x")))
            .bearer_auth(unscoped),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        doc["detail"].as_str().unwrap_or("").contains("switch"),
        "{doc}"
    );

    // A route the table exempts leaves the check to the service.
    let got = h
        .ok(h.get(&format!("/v1/any-tenant/{other}/things/x")))
        .await;
    assert_eq!(got["tenantId"], other.to_string());
    assert_eq!(
        h.echo.calls.load(Ordering::SeqCst),
        3,
        "refused calls never reached the service"
    );
}

#[tokio::test]
async fn only_verified_and_allow_listed_headers_reach_the_service() {
    let h = Harness::start().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let got = h
        .ok(h
            .get("/v1/headers")
            .header("x-tenant-id", TenantId::new().to_string())
            .header("x-user-id", "someone-else")
            .header("x-roles", "owner")
            .header("x-internal-admin", "true")
            .header("x-request-id", "req-123")
            .header("traceparent", traceparent)
            .header("accept-language", "fr")
            .header("x-custom", "dropped"))
        .await;
    let metadata = got["metadata"].as_object().expect("a map");
    for spoofed in [
        "x-tenant-id",
        "x-user-id",
        "x-roles",
        "x-internal-admin",
        "x-custom",
    ] {
        assert!(
            !metadata.contains_key(spoofed),
            "{spoofed} reached the service: {metadata:?}"
        );
    }
    assert_eq!(metadata["authorization"], format!("Bearer {}", h.token));
    assert_eq!(metadata["x-request-id"], "req-123");
    assert_eq!(metadata["traceparent"], traceparent);
    assert_eq!(metadata["x-keel-client-ip"], "127.0.0.1");
    assert!(
        !metadata.contains_key("x-forwarded-for"),
        "the address travels in the gateway's own header only"
    );
    assert_eq!(metadata["accept-language"], "fr");
}

#[tokio::test]
async fn api_keys_are_exchanged_once_and_cached() {
    let h = Harness::start().await;
    let t = h.tenant;
    for request in [
        h.http
            .get(h.url("/v1/headers"))
            .header("x-api-key", GOOD_KEY),
        h.http
            .get(h.url("/v1/headers"))
            .header("authorization", format!("ApiKey {GOOD_KEY}")),
    ] {
        let got = h.ok(request).await;
        let forwarded = got["metadata"]["authorization"].as_str().expect("a token");
        assert!(
            forwarded.starts_with("Bearer ") && !forwarded.contains(GOOD_KEY),
            "the exchanged token, never the key"
        );
    }
    let got = h
        .ok(h
            .http
            .get(h.url(&format!("/v1/tenants/{t}/things/k")))
            .header("x-api-key", GOOD_KEY))
        .await;
    assert_eq!(
        got["tenantId"],
        t.to_string(),
        "the key's tenant passes the tenant check"
    );
    assert_eq!(
        h.exchanges.load(Ordering::SeqCst),
        1,
        "one exchange, then the cache"
    );

    let (status, doc) = problem(
        h.http
            .get(h.url("/v1/headers"))
            .header("x-api-key", "keel_ak_wrong"),
    )
    .await;
    assert_eq!((status, doc["code"].as_str()), (401, Some("AUTHN")));
    let (status, _) = problem(
        h.http
            .get(h.url("/v1/headers"))
            .header("x-api-key", "keel_ak_wrong"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        h.exchanges.load(Ordering::SeqCst),
        2,
        "a refused key is remembered briefly"
    );

    let (status, _) = problem(
        h.http
            .get(h.url("/v1/headers"))
            .header("x-api-key", GOOD_KEY)
            .bearer_auth(&h.token),
    )
    .await;
    assert_eq!(status, 401, "two credentials are ambiguous");
}

#[tokio::test]
async fn suspended_tenants_and_missing_modules_are_refused_with_a_reason() {
    let h = Harness::start().await;
    let path = |t: TenantId| format!("/v1/tenants/{t}/ai/quota");
    // Active with the module: served.
    let got = h.ok(h.get(&path(h.tenant))).await;
    assert_eq!(got["limitTokens"], "-1");

    let cases = [
        (TenantState::Suspended, vec!["ai"], "suspended"),
        (
            TenantState::PendingApproval,
            vec!["ai"],
            "awaiting approval",
        ),
        (
            TenantState::Active,
            vec!["delivery"],
            "`ai` module is not enabled",
        ),
    ];
    for (state, modules, reason) in cases {
        let tenant = TenantId::new();
        h.tenancy.tenants.lock().expect("lock").insert(
            tenant.to_string(),
            (state, modules.into_iter().map(str::to_owned).collect()),
        );
        let token = h
            .issuer
            .token(TokenSpec::any_user().tenant(tenant).perm("*"));
        let (status, doc) = problem(h.http.get(h.url(&path(tenant))).bearer_auth(token)).await;
        assert_eq!(
            (status, doc["code"].as_str()),
            (403, Some("AUTHZ")),
            "{doc}"
        );
        assert!(
            doc["detail"].as_str().unwrap_or("").contains(reason),
            "{doc}"
        );
    }
    // Cached: the first tenant's second call asks tenancy no more.
    let before = h.tenancy.lookups.load(Ordering::SeqCst);
    h.ok(h.get(&path(h.tenant))).await;
    assert_eq!(h.tenancy.lookups.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn a_tenant_refused_by_entitlements_never_reaches_the_module() {
    let h = Harness::start().await;
    h.tenancy.tenants.lock().expect("lock").insert(
        h.tenant.to_string(),
        (TenantState::Suspended, vec!["ai".into()]),
    );
    let t = h.tenant;
    let (status, _) = problem(h.post(
        &format!("/v1/tenants/{t}/ai/completions"),
        &json!({ "prompt": "x" }),
    ))
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_service_marked_active_tenant_refuses_suspended_tenants_without_a_module() {
    let routes = crate::support::ROUTES.replace(
        "  keel.test.v1.EchoService:\n    upstream: test\n",
        "  keel.test.v1.EchoService:\n    upstream: test\n    active_tenant: true\n",
    );
    let h = Harness::with_routes(&routes).await;
    h.ok(h.get("/v1/things/a")).await;
    let suspended = TenantId::new();
    h.tenancy
        .tenants
        .lock()
        .expect("lock")
        .insert(suspended.to_string(), (TenantState::Suspended, vec![]));
    let token = h
        .issuer
        .token(TokenSpec::any_user().tenant(suspended).perm("*"));
    let (status, doc) = problem(h.http.get(h.url("/v1/things/a")).bearer_auth(&token)).await;
    assert_eq!(status, 403);
    assert!(
        doc["detail"].as_str().unwrap_or("").contains("suspended"),
        "{doc}"
    );
    // Public methods and unscoped tokens are not tenant calls.
    h.ok(h.http.get(h.url("/v1/ping")).bearer_auth(&token))
        .await;
    let unscoped = h.issuer.token(TokenSpec::any_user().perm("*"));
    h.ok(h.http.get(h.url("/v1/things/a")).bearer_auth(unscoped))
        .await;
}
