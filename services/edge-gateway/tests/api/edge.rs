//! What surrounds the routes: probes, metrics, CORS, security headers, request ids, the shipped
//! configuration, graceful shutdown.

use std::path::Path;
use std::time::Duration;

use keel_edge_gateway::config::ConfigError;
use keel_edge_gateway::router::Router;
use keel_edge_gateway::{Loaded, descriptors};

use crate::support::{Harness, ROUTES, problem};

#[tokio::test]
async fn probes_and_metrics_answer() {
    let h = Harness::start().await;
    let health = h.http.get(h.url("/healthz")).send().await.expect("answers");
    assert_eq!(health.status(), 200);
    let ready = h.http.get(h.url("/readyz")).send().await.expect("answers");
    assert_eq!(ready.status(), 200, "ready once the JWKS is loaded");
    h.ok(h.get("/v1/things/a")).await;
    let metrics = h
        .http
        .get(h.url("/metrics"))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"keel_http_requests_total{service="edge-gateway",route="keel.test.v1.EchoService.GetThing",method="GET",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("keel_upstream_calls_total"), "{metrics}");
    let (status, _) = problem(h.http.post(h.url("/healthz"))).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn with_an_admin_listener_the_kernel_admin_server_serves_probes_and_the_gateway_metrics() {
    // A top-level section after `http:`'s lines.
    let h = Harness::build(ROUTES, "admin:\n  listen: 127.0.0.1:0").await;
    let admin = h
        .app
        .as_ref()
        .and_then(|app| app.admin_addr)
        .expect("an admin listener");
    h.ok(h.get("/v1/things/a")).await;
    let get = |path: &str| h.http.get(format!("http://{admin}{path}")).send();
    let health = get("/healthz").await.expect("answers");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("text"), "ok\n");
    let ready = get("/readyz").await.expect("answers");
    assert_eq!(ready.status(), 200, "ready once the JWKS is loaded");
    let metrics = get("/metrics")
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"keel_http_requests_total{service="edge-gateway",route="keel.test.v1.EchoService.GetThing",method="GET",status="200"} 1"#),
        "{metrics}"
    );
    let openapi = get("/openapi.json").await.expect("answers");
    assert_eq!(openapi.status(), 200);
    let (status, _) = problem(h.http.get(h.url("/metrics"))).await;
    assert_eq!(status, 404, "metrics are not on the public port then");
    let ready = h.http.get(h.url("/readyz")).send().await.expect("answers");
    assert_eq!(
        ready.status(),
        200,
        "load balancers still probe the public port"
    );
}

#[tokio::test]
async fn every_response_carries_security_headers_and_a_request_id() {
    let h = Harness::start().await;
    for path in ["/v1/things/a", "/v1/nowhere", "/openapi.json"] {
        let response = h.get(path).send().await.expect("answers");
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert!(headers.contains_key("content-security-policy"), "{path}");
        assert_eq!(
            headers["x-request-id"].len(),
            36,
            "a generated UUID: {path}"
        );
    }
    let response = h
        .get("/v1/things/a")
        .header("x-request-id", "mine-1")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.headers()["x-request-id"], "mine-1");
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let h = Harness::start().await;
    let preflight = |origin: &str| {
        h.http
            .request(reqwest::Method::OPTIONS, h.url("/v1/things/a"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
    };
    let allowed = preflight("https://app.example.com")
        .send()
        .await
        .expect("answers");
    assert_eq!(allowed.status(), 204);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allow_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(allow_headers.contains("authorization") && allow_headers.contains("accept-language"));
    let (status, _) = problem(preflight("https://evil.example.com")).await;
    assert_eq!(status, 403);

    let actual = h
        .get("/v1/things/a")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("answers");
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        actual.headers()["access-control-expose-headers"]
            .to_str()
            .expect("ascii")
            .contains("x-request-id")
    );
    let foreign = h
        .get("/v1/things/a")
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .expect("answers");
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn the_docs_page_works_offline() {
    let h = Harness::start().await;
    let page = h.http.get(h.url("/docs")).send().await.expect("answers");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(
        html.contains("/docs/docs.js") && !html.contains("https://"),
        "no CDN"
    );
    for asset in ["/docs/docs.js", "/docs/docs.css"] {
        let response = h.http.get(h.url(asset)).send().await.expect("answers");
        assert_eq!(response.status(), 200, "{asset}");
        assert!(
            !response.text().await.expect("text").contains("https://"),
            "{asset} loads nothing remote"
        );
    }
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut h = Harness::start().await;
    let request = h.get("/v1/slow/300").send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let app = h.app.take().expect("running");
    let stopping = tokio::spawn(app.stop());
    let response = in_flight.await.expect("joined").expect("answered, not cut");
    assert_eq!(response.status(), 200);
    tokio::time::timeout(Duration::from_secs(3), stopping)
        .await
        .expect("stops within the grace period")
        .expect("joined");
    assert!(
        h.http.get(h.url("/healthz")).send().await.is_err(),
        "no longer listening"
    );
}

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn the_shipped_configuration_routes_every_annotated_method() {
    let loaded = Loaded::load(&workspace().join("config/edge-gateway.yaml"))
        .expect("config/edge-gateway.yaml loads");
    let pool = descriptors::pool(&[]).expect("descriptors");
    let router =
        Router::build(&pool, &loaded.routes, &loaded.routes_source).expect("routes compile");
    let ids: Vec<&str> = router
        .bindings()
        .iter()
        .map(|b| b.route.id.as_str())
        .collect();
    for method in [
        "identity.v1.AuthService.Login",
        "identity.v1.AuthService.GetJwks",
        "identity.v1.AccessService.CreateApiKey",
        "tenancy.v1.TenantService.CreateTenant",
        "tenancy.v1.MembershipService.AcceptInvitation",
        "tenancy.v1.ModuleService.GetEntitlements",
        "billing.v1.BillingService.GetInvoice",
        "ai.v1.AiService.StreamComplete",
    ] {
        assert!(ids.contains(&method), "{method} is routed");
    }
    assert!(
        !ids.contains(&"identity.v1.AuthService.ExchangeApiKey"),
        "internal methods are not"
    );
    let public: Vec<&str> = router
        .bindings()
        .iter()
        .filter(|b| b.route.public)
        .map(|b| b.route.id.as_str())
        .collect();
    assert_eq!(
        public,
        [
            "identity.v1.AuthService.Register",
            "identity.v1.AuthService.Login",
            "identity.v1.AuthService.Refresh",
            "identity.v1.AuthService.VerifyEmail",
            "identity.v1.AuthService.RequestPasswordReset",
            "identity.v1.AuthService.ResetPassword",
            "identity.v1.AuthService.GetJwks",
            // The payment webhook's raw route: signed by the provider, no user credentials.
            "billing.v1.BillingService.IngestWebhook",
        ]
    );
}

#[test]
fn a_route_table_still_marking_a_method_public_is_refused_naming_the_key() {
    // Public methods are declared in the protos (`keel.v1.access`) now, not in the route table.
    let text = "upstreams:\n  a: { address: 127.0.0.1:1 }\nservices:\n  identity.v1.AuthService:\n    upstream: a\n    methods:\n      Login: { public: true }\n";

    let Err(err) = Loaded::from_parts(
        crate::support::gateway_config_offline(),
        text,
        Path::new("routes.yaml"),
    ) else {
        panic!("a `public:` key is refused");
    };

    let message = err.to_string();
    assert!(message.contains("unknown field `public`"), "{message}");
    assert!(message.contains("routes.yaml"), "{message}");
}

#[test]
fn a_route_table_naming_what_does_not_exist_stops_start_up_at_its_line() {
    let pool = descriptors::pool(&[]).expect("descriptors");
    let config = crate::support::gateway_config_offline();
    let cases = [
        (
            "upstreams:\n  a: { address: 127.0.0.1:1 }\nservices:\n  nope.v1.Missing:\n    upstream: a\n",
            4,
            "nope.v1.Missing",
        ),
        (
            "upstreams:\n  a: { address: 127.0.0.1:1 }\nservices:\n  identity.v1.AuthService:\n    upstream: a\n    methods:\n      Logn: { tenant_match: false }\n",
            7,
            "Logn",
        ),
        (
            "upstreams:\n  a: { address: 127.0.0.1:1 }\nservices:\n  identity.v1.AuthService:\n    upstream: a\n    methods:\n      ExchangeApiKey: { tenant_match: false }\n",
            7,
            "google.api.http",
        ),
    ];
    for (text, line, mention) in cases {
        let loaded = Loaded::from_parts(config.clone(), text, Path::new("routes.yaml"))
            .expect("shape is valid");
        let err = Router::build(&pool, &loaded.routes, &loaded.routes_source).expect_err("refused");
        match &err {
            ConfigError::AtLine { line: at, .. } => assert_eq!(*at, line, "{err}"),
            other => panic!("no line: {other}"),
        }
        assert!(err.to_string().contains(mention), "{err}");
    }
}
