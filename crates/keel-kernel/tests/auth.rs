//! JWT authentication end to end: a real JWKS endpoint over HTTP (the testkit's issuer), a real
//! tonic server on 127.0.0.1:0 behind `AuthLayer`, called over HTTP/2 by the generated client.
// In a test a panic is the failure report; the workspace lint is aimed at service code.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keel_kernel::auth::{
    self, AuthLayer, Claims, JwtVerifier, PrincipalKind, PublicPaths, permission_matches,
};
use keel_kernel::config::AuthConfig;
use keel_kernel::{Error, ErrorCode, TenantId, UserId};
use keel_proto::common::v1::diagnostics_client::DiagnosticsClient;
use keel_proto::common::v1::diagnostics_server::{Diagnostics, DiagnosticsServer};
use keel_proto::common::v1::{WhoAmIRequest, WhoAmIResponse};
use keel_testkit::tokens::{TestIssuer, TokenSpec, encode};
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

/// TEST-ONLY RSA key pair (see tests/fixtures/README.md).
const RSA_PRIVATE_PEM: &[u8] = include_bytes!("fixtures/TEST_ONLY_rsa_private.pem");
const RSA_PUBLIC_PEM: &[u8] = include_bytes!("fixtures/TEST_ONLY_rsa_public.pem");
const RSA_KID: &str = "test-rsa-2048";

// ---------------------------------------------------------------------------------------------
// Harness

/// Echoes whatever claims the layer put into the request (none on a public call without a token).
struct Echo;

#[tonic::async_trait]
impl Diagnostics for Echo {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let reply = match request.extensions().get::<Claims>() {
            Some(claims) => WhoAmIResponse {
                subject: claims.sub.clone(),
                tenant_id: claims.tid.map(|tid| tid.to_string()).unwrap_or_default(),
                roles: claims.roles.clone(),
                session_id: claims.sid.clone().unwrap_or_default(),
                request_id: String::new(),
            },
            None => WhoAmIResponse::default(),
        };
        Ok(Response::new(reply))
    }
}

/// Serve Diagnostics and health behind `layer` on a fresh port.
async fn serve(layer: AuthLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .add_service(DiagnosticsServer::new(Echo))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    addr
}

/// A test issuer and a server that trusts it.
struct App {
    issuer: TestIssuer,
    addr: SocketAddr,
}

impl App {
    async fn start() -> App {
        let issuer = TestIssuer::start().await;
        let addr = serve(AuthLayer::new(issuer.verifier(), "test")).await;
        App { issuer, addr }
    }

    async fn who_am_i(&self, token: Option<&str>) -> Result<WhoAmIResponse, Status> {
        who_am_i(self.addr, token).await
    }
}

async fn who_am_i(addr: SocketAddr, token: Option<&str>) -> Result<WhoAmIResponse, Status> {
    let mut client = DiagnosticsClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut request = Request::new(WhoAmIRequest {});
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    client.who_am_i(request).await.map(Response::into_inner)
}

#[track_caller]
fn assert_refused(result: Result<WhoAmIResponse, Status>, message: &str) {
    let status = result.expect_err("the call should have been refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let error = Error::from_status(&status);
    assert_eq!(error.code(), ErrorCode::Authn, "{status:?}");
    assert_eq!(error.message(), message);
}

#[track_caller]
fn assert_verify_refused(result: Result<Claims, Error>, message: &str) {
    let error = result.expect_err("the token should have been refused");
    assert_eq!(error.code(), ErrorCode::Authn, "{error:?}");
    assert_eq!(error.message(), message);
}

fn rsa_encoding_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM).unwrap()
}

/// The fixture's public key as identity would publish it.
fn rsa_jwk() -> Jwk {
    let mut jwk = Jwk::from_encoding_key(&rsa_encoding_key(), Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(RSA_KID.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk
}

fn header(algorithm: Algorithm, kid: &str) -> Header {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    header
}

fn config_with_refetch_limit(issuer: &TestIssuer, secs: u64) -> AuthConfig {
    AuthConfig {
        jwks_min_refetch_secs: secs,
        ..issuer.auth_config()
    }
}

// ---------------------------------------------------------------------------------------------
// Through a real gRPC server

#[tokio::test]
async fn a_valid_token_yields_its_claims_to_the_handler() {
    let app = App::start().await;
    let user = UserId::new();
    let tenant = TenantId::new();
    let token = app.issuer.token(
        TokenSpec::user(user)
            .tenant(tenant)
            .role("admin")
            .session("s-1"),
    );

    let me = app.who_am_i(Some(&token)).await.unwrap();

    assert_eq!(me.subject, user.to_string());
    assert_eq!(me.tenant_id, tenant.to_string());
    assert_eq!(me.roles, vec!["admin"]);
    assert_eq!(me.session_id, "s-1");
}

#[tokio::test]
async fn a_call_without_a_token_is_refused_with_authn() {
    let app = App::start().await;
    assert_refused(app.who_am_i(None).await, "missing bearer token");
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let app = App::start().await;
    let token = app.issuer.tampered_token(TokenSpec::any_user());
    assert_refused(app.who_am_i(Some(&token)).await, "invalid token signature");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = App::start().await;
    let token = app.issuer.expired_token(TokenSpec::any_user());
    assert_refused(app.who_am_i(Some(&token)).await, "token expired");
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let app = App::start().await;
    let token = app.issuer.not_yet_valid_token(TokenSpec::any_user());
    assert_refused(app.who_am_i(Some(&token)).await, "token not yet valid");
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let app = App::start().await;
    let token = app.issuer.alg_none_token(TokenSpec::any_user());
    assert_refused(
        app.who_am_i(Some(&token)).await,
        "token algorithm not accepted",
    );
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let app = App::start().await;
    let token = app.issuer.wrong_issuer_token(TokenSpec::any_user());
    assert_refused(
        app.who_am_i(Some(&token)).await,
        "token issuer not accepted",
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let app = App::start().await;
    let token = app.issuer.wrong_audience_token(TokenSpec::any_user());
    assert_refused(
        app.who_am_i(Some(&token)).await,
        "token audience not accepted",
    );
}

#[tokio::test]
async fn a_token_signed_by_an_unpublished_key_is_refused() {
    let app = App::start().await;
    let token = app.issuer.unknown_kid_token(TokenSpec::any_user());
    assert_refused(app.who_am_i(Some(&token)).await, "unknown signing key");
}

#[tokio::test]
async fn a_token_without_a_kid_is_refused() {
    let app = App::start().await;
    let token = app.issuer.no_kid_token(TokenSpec::any_user());
    assert_refused(app.who_am_i(Some(&token)).await, "token has no key id");
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_ed25519_public_key_as_secret_is_refused() {
    let app = App::start().await;
    let key = app.issuer.current_key();
    let claims = app.issuer.claims(&TokenSpec::any_user().perm("*"));
    let forged = encode(
        &header(Algorithm::HS256, key.kid()),
        &claims,
        &EncodingKey::from_secret(key.public_key_bytes()),
    );
    assert_refused(
        app.who_am_i(Some(&forged)).await,
        "token algorithm not accepted",
    );
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_rsa_public_key_as_secret_is_refused() {
    let app = App::start().await;
    app.issuer.publish(rsa_jwk());
    let claims = app.issuer.claims(&TokenSpec::any_user().perm("*"));
    let forged = encode(
        &header(Algorithm::HS256, RSA_KID),
        &claims,
        &EncodingKey::from_secret(RSA_PUBLIC_PEM),
    );
    assert_refused(
        app.who_am_i(Some(&forged)).await,
        "token algorithm not accepted",
    );
}

#[tokio::test]
async fn an_rs256_token_signed_by_a_published_rsa_key_is_accepted() {
    let app = App::start().await;
    app.issuer.publish(rsa_jwk());
    let claims = app.issuer.claims(&TokenSpec::any_user());
    let token = encode(
        &header(Algorithm::RS256, RSA_KID),
        &claims,
        &rsa_encoding_key(),
    );

    let me = app.who_am_i(Some(&token)).await.unwrap();

    assert_eq!(me.subject, claims.sub);
}

#[tokio::test]
async fn a_token_whose_algorithm_differs_from_its_keys_is_refused() {
    let app = App::start().await;
    app.issuer.publish(rsa_jwk());
    let claims = app.issuer.claims(&TokenSpec::any_user());

    // RS256 naming the Ed25519 key, and EdDSA naming the RSA key: both honestly signed.
    let rs_on_ed = encode(
        &header(Algorithm::RS256, &app.issuer.kid()),
        &claims,
        &rsa_encoding_key(),
    );
    let key = app.issuer.current_key();
    let ed_on_rs = encode(
        &header(Algorithm::EdDSA, RSA_KID),
        &claims,
        key.encoding_key(),
    );

    assert_refused(
        app.who_am_i(Some(&rs_on_ed)).await,
        "token algorithm does not match its key",
    );
    assert_refused(
        app.who_am_i(Some(&ed_on_rs)).await,
        "token algorithm does not match its key",
    );
}

#[tokio::test]
async fn a_symmetric_key_published_in_the_jwks_is_never_used() {
    let app = App::start().await;
    let secret = b"a shared secret that must never verify anything";
    let mut oct =
        Jwk::from_encoding_key(&EncodingKey::from_secret(secret), Algorithm::HS256).unwrap();
    oct.common.key_id = Some("hmac".to_owned());
    app.issuer.publish(oct);
    let claims = app.issuer.claims(&TokenSpec::any_user());
    let token = encode(
        &header(Algorithm::HS256, "hmac"),
        &claims,
        &EncodingKey::from_secret(secret),
    );

    assert_refused(
        app.who_am_i(Some(&token)).await,
        "token algorithm not accepted",
    );
}

#[tokio::test]
async fn a_malformed_authorization_header_is_refused() {
    let app = App::start().await;
    let mut client = DiagnosticsClient::connect(format!("http://{}", app.addr))
        .await
        .unwrap();
    let mut request = Request::new(WhoAmIRequest {});
    request
        .metadata_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());

    let result = client.who_am_i(request).await.map(Response::into_inner);

    assert_refused(result, "malformed authorization header");
    assert_refused(app.who_am_i(Some("not-a-jwt")).await, "malformed token");
}

#[tokio::test]
async fn the_health_service_answers_without_a_token() {
    let app = App::start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);

    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;

    assert!(reply.is_ok(), "{reply:?}");
}

#[tokio::test]
async fn a_public_method_passes_without_a_token_and_still_sees_a_valid_ones_claims() {
    let issuer = TestIssuer::start().await;
    let layer =
        AuthLayer::new(issuer.verifier(), "test").public_method("/common.v1.Diagnostics/WhoAmI");
    let addr = serve(layer).await;
    let user = UserId::new();

    let anonymous = who_am_i(addr, None).await.unwrap();
    let known = who_am_i(addr, Some(&issuer.token(TokenSpec::user(user))))
        .await
        .unwrap();
    let expired = who_am_i(addr, Some(&issuer.expired_token(TokenSpec::user(user))))
        .await
        .unwrap();

    assert_eq!(anonymous.subject, "");
    assert_eq!(known.subject, user.to_string());
    assert_eq!(
        expired.subject, "",
        "an invalid token on a public method is ignored"
    );
}

#[test]
fn a_public_service_prefix_does_not_cover_a_longer_service_name() {
    let public = PublicPaths::none().service("common.v1.Diag");
    assert!(!public.is_public("/common.v1.Diagnostics/WhoAmI"));
    assert!(public.is_public("/common.v1.Diag/Anything"));
    assert!(PublicPaths::standard().is_public("/grpc.health.v1.Health/Check"));
    assert!(
        PublicPaths::standard()
            .is_public("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    );
}

#[tokio::test]
async fn a_key_rotated_in_at_the_jwks_endpoint_is_picked_up_on_an_unknown_kid() {
    let app = App::start().await;
    app.who_am_i(Some(&app.issuer.token(TokenSpec::any_user())))
        .await
        .unwrap();
    assert_eq!(app.issuer.fetch_count(), 1);

    app.issuer.rotate();
    let me = app
        .who_am_i(Some(&app.issuer.token(TokenSpec::any_user())))
        .await;

    assert!(me.is_ok(), "{me:?}");
    assert_eq!(app.issuer.fetch_count(), 2);
}

/// Collects every value recorded into an existing span.
#[derive(Clone, Default)]
struct RecordedFields(Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RecordedFields {
    fn on_record(
        &self,
        _span: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        values.record(&mut self.clone());
    }
}

impl tracing::field::Visit for RecordedFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0
            .lock()
            .unwrap()
            .push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .lock()
            .unwrap()
            .push((field.name().to_owned(), format!("{value:?}")));
    }
}

#[tokio::test]
async fn the_request_span_gets_the_tenant_and_user_of_the_token() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let recorded = RecordedFields::default();
    // Thread-local, and a #[tokio::test] runtime runs the server on this thread too.
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorded.clone()));
    let issuer = TestIssuer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .trace_fn(|_| {
                tracing::info_span!(
                    "grpc",
                    tenant_id = tracing::field::Empty,
                    user_id = tracing::field::Empty
                )
            })
            .layer(AuthLayer::new(issuer.verifier(), "test"))
            .add_service(DiagnosticsServer::new(Echo))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let (user, tenant) = (UserId::new(), TenantId::new());

    who_am_i(
        addr,
        Some(&issuer.token(TokenSpec::user(user).tenant(tenant))),
    )
    .await
    .unwrap();

    let fields = recorded.0.lock().unwrap().clone();
    assert!(
        fields.contains(&("tenant_id".into(), tenant.to_string())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("user_id".into(), user.to_string())),
        "{fields:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Contracts the protos declare (`keel.v1.access`), enforced by the layer

/// A handler that answers with the subject of the claims the layer handed it ("" for none).
async fn subject_of_caller(
    request: http::Request<()>,
) -> Result<http::Response<String>, std::convert::Infallible> {
    let subject = request
        .extensions()
        .get::<Claims>()
        .map(|claims| claims.sub.clone())
        .unwrap_or_default();
    Ok(http::Response::new(subject))
}

/// Call the gRPC method at `path` through `layer`: the subject the handler saw, or the refusal.
async fn call_method(layer: &AuthLayer, path: &str, token: Option<&str>) -> Result<String, Status> {
    use tower::{Layer as _, ServiceExt as _};
    let mut request = http::Request::builder().uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = layer
        .layer(tower::service_fn(subject_of_caller))
        .oneshot(request.body(()).unwrap())
        .await
        .unwrap();
    match Status::from_header_map(response.headers()) {
        Some(status) => Err(status),
        None => Ok(response.into_body()),
    }
}

#[track_caller]
fn assert_forbidden(result: Result<String, Status>, message: &str) {
    let status = result.expect_err("the call should have been refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let error = Error::from_status(&status);
    assert_eq!(error.code(), ErrorCode::Authz, "{status:?}");
    assert_eq!(error.message(), message);
}

const LIST_ROLES: &str = "/identity.v1.AccessService/ListRoles";
const GET_JWKS: &str = "/identity.v1.AuthService/GetJwks";
const LIST_PERMISSIONS: &str = "/identity.v1.AccessService/ListPermissions";

#[tokio::test]
async fn a_method_the_protos_declare_public_passes_without_a_token() {
    let issuer = TestIssuer::start().await;
    let layer = AuthLayer::new(issuer.verifier(), "test");

    let anonymous = call_method(&layer, GET_JWKS, None).await;

    assert_eq!(anonymous.unwrap(), "");
    assert!(PublicPaths::standard().is_public("/identity.v1.AuthService/Login"));
    assert!(!PublicPaths::none().is_public("/identity.v1.AuthService/Login"));
}

#[tokio::test]
async fn a_declared_permission_is_refused_without_it_and_passes_with_it() {
    let issuer = TestIssuer::start().await;
    let layer = AuthLayer::new(issuer.verifier(), "test");
    let (user, tenant) = (UserId::new(), TenantId::new());
    let without = issuer.token(
        TokenSpec::user(user)
            .tenant(tenant)
            .perm("identity.api_key.list"),
    );
    let with = issuer.token(TokenSpec::user(user).tenant(tenant).perm("identity.*.*"));

    assert_forbidden(
        call_method(&layer, LIST_ROLES, Some(&without)).await,
        "missing permission identity.role.list",
    );
    assert_eq!(
        call_method(&layer, LIST_ROLES, Some(&with)).await.unwrap(),
        user.to_string()
    );
}

#[tokio::test]
async fn an_api_key_needs_a_scope_for_a_declared_permission_too() {
    let issuer = TestIssuer::start().await;
    let layer = AuthLayer::new(issuer.verifier(), "test");
    let tenant = TenantId::new();
    let unscoped = issuer.token(TokenSpec::api_key("key-1", tenant).perms(["*"]));
    let scoped = issuer.token(
        TokenSpec::api_key("key-2", tenant)
            .perms(["*"])
            .scopes(["identity.role.list"]),
    );

    assert_forbidden(
        call_method(&layer, LIST_ROLES, Some(&unscoped)).await,
        "missing permission identity.role.list",
    );
    assert_eq!(
        call_method(&layer, LIST_ROLES, Some(&scoped))
            .await
            .unwrap(),
        "key-2"
    );
}

#[tokio::test]
async fn a_method_declaring_no_access_still_needs_a_token_and_nothing_more() {
    let issuer = TestIssuer::start().await;
    let layer = AuthLayer::new(issuer.verifier(), "test");
    let user = UserId::new();

    let anonymous = call_method(&layer, LIST_PERMISSIONS, None).await;
    let known = call_method(
        &layer,
        LIST_PERMISSIONS,
        Some(&issuer.token(TokenSpec::user(user))),
    )
    .await;

    let status = anonymous.expect_err("a token is needed");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(
        Error::from_status(&status).message(),
        "missing bearer token"
    );
    assert_eq!(known.unwrap(), user.to_string());
}

#[tokio::test]
async fn a_method_declaring_a_permission_is_never_made_public() {
    let issuer = TestIssuer::start().await;
    let layer = AuthLayer::new(issuer.verifier(), "test").public_method(LIST_ROLES);

    let status = call_method(&layer, LIST_ROLES, None)
        .await
        .expect_err("a declared permission needs a caller who holds it");

    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

// ---------------------------------------------------------------------------------------------
// The verifier's key cache

#[tokio::test]
async fn known_keys_are_served_from_the_cache() {
    let issuer = TestIssuer::start().await;
    let verifier = issuer.verifier();

    for _ in 0..5 {
        verifier
            .verify(&issuer.token(TokenSpec::any_user()))
            .await
            .unwrap();
    }

    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited() {
    let issuer = TestIssuer::start().await;
    let verifier = JwtVerifier::new(&config_with_refetch_limit(&issuer, 2)).unwrap();
    verifier
        .verify(&issuer.token(TokenSpec::any_user()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;

    // A burst of made-up kids costs one fetch, then none until the window has passed.
    for _ in 0..10 {
        let result = verifier
            .verify(&issuer.unknown_kid_token(TokenSpec::any_user()))
            .await;
        assert_verify_refused(result, "unknown signing key");
    }
    assert_eq!(issuer.fetch_count(), 2);

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let result = verifier
        .verify(&issuer.unknown_kid_token(TokenSpec::any_user()))
        .await;
    assert_verify_refused(result, "unknown signing key");
    assert_eq!(issuer.fetch_count(), 3);
}

#[tokio::test]
async fn a_key_rotated_in_within_the_refetch_window_waits_for_the_window() {
    let issuer = TestIssuer::start().await;
    let verifier = JwtVerifier::new(&config_with_refetch_limit(&issuer, 2)).unwrap();
    verifier
        .verify(&issuer.token(TokenSpec::any_user()))
        .await
        .unwrap();

    issuer.rotate();
    let token = issuer.token(TokenSpec::any_user());
    assert_verify_refused(verifier.verify(&token).await, "unknown signing key");

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    verifier.verify(&token).await.unwrap();
    assert_eq!(issuer.fetch_count(), 2);
}

#[tokio::test]
async fn concurrent_callers_with_a_new_kid_share_one_fetch() {
    let issuer = TestIssuer::start().await;
    let verifier = JwtVerifier::new(&config_with_refetch_limit(&issuer, 1)).unwrap();
    verifier
        .verify(&issuer.token(TokenSpec::any_user()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    issuer.rotate();
    let token = Arc::new(issuer.token(TokenSpec::any_user()));

    let calls: Vec<_> = (0..20)
        .map(|_| {
            let verifier = verifier.clone();
            let token = token.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }

    assert_eq!(issuer.fetch_count(), 2);
}

#[tokio::test]
async fn a_jwks_endpoint_that_is_down_makes_verification_unavailable_until_it_is_back() {
    let issuer = TestIssuer::start().await;
    issuer.set_failing(true);
    let verifier = JwtVerifier::new(&config_with_refetch_limit(&issuer, 1)).unwrap();
    let token = issuer.token(TokenSpec::any_user());

    let down = verifier.verify(&token).await.unwrap_err();
    assert_eq!(down.code(), ErrorCode::Unavailable);
    let still_down = verifier.verify(&token).await.unwrap_err();
    assert_eq!(still_down.code(), ErrorCode::Unavailable);
    assert_eq!(
        issuer.fetch_count(),
        1,
        "retries wait for the refetch window"
    );

    issuer.set_failing(false);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    verifier.verify(&token).await.unwrap();
}

#[tokio::test]
async fn in_process_keys_verify_without_fetching_and_can_be_replaced() {
    let issuer = TestIssuer::start().await;
    let config = AuthConfig {
        jwks_url: String::new(),
        ..issuer.auth_config()
    };
    let verifier = JwtVerifier::from_jwks(&config, &issuer.jwks());
    verifier
        .verify(&issuer.token(TokenSpec::any_user()))
        .await
        .unwrap();

    issuer.rotate();
    let token = issuer.token(TokenSpec::any_user());
    assert_verify_refused(verifier.verify(&token).await, "unknown signing key");

    assert_eq!(verifier.replace_keys(&issuer.jwks()), 2);
    verifier.verify(&token).await.unwrap();
    assert_eq!(issuer.fetch_count(), 0);
}

#[test]
fn a_verifier_refuses_a_jwks_url_it_cannot_fetch() {
    let config = AuthConfig {
        jwks_url: "https://identity/jwks".into(),
        issuer: "keel".into(),
        audience: "keel".into(),
        jwks_min_refetch_secs: 30,
        leeway_secs: 30,
    };
    let err = JwtVerifier::new(&config).unwrap_err();
    assert!(err.to_string().contains("auth.jwks_url"), "{err}");
}

#[tokio::test]
async fn verified_claims_carry_kind_perms_and_scopes() {
    let issuer = TestIssuer::start().await;
    let tenant = TenantId::new();
    let token = issuer.token(
        TokenSpec::api_key("key-1", tenant)
            .perms(["delivery.*.*"])
            .scopes(["delivery.orders.read"]),
    );

    let claims = issuer.verifier().verify(&token).await.unwrap();

    assert_eq!(claims.kind, PrincipalKind::ApiKey);
    assert_eq!(claims.tenant().unwrap(), tenant);
    assert_eq!(claims.perms, vec!["delivery.*.*"]);
    assert_eq!(claims.scopes, vec!["delivery.orders.read"]);
    assert_eq!(claims.iss, issuer.issuer());
}

// ---------------------------------------------------------------------------------------------
// Permissions

fn claims_with(perms: &[&str]) -> Claims {
    Claims {
        sub: UserId::new().to_string(),
        kind: PrincipalKind::User,
        tid: Some(TenantId::new()),
        roles: vec![],
        perms: perms.iter().map(|p| p.to_string()).collect(),
        sid: None,
        scopes: vec![],
        email: None,
        email_verified: false,
        iss: "keel".into(),
        aud: "keel".into(),
        exp: 0,
        iat: 0,
        nbf: None,
        jti: "j".into(),
    }
}

#[test]
fn a_lone_star_grants_every_permission() {
    assert!(permission_matches("*", "delivery.orders.read"));
    assert!(permission_matches("*", "billing.invoices.void"));
}

#[test]
fn a_wildcard_segment_matches_any_value_in_that_segment() {
    assert!(permission_matches("delivery.*.*", "delivery.orders.read"));
    assert!(permission_matches("*.*.read", "billing.invoices.read"));
    assert!(permission_matches(
        "delivery.orders.*",
        "delivery.orders.write"
    ));
    assert!(!permission_matches("delivery.*.*", "billing.invoices.read"));
    assert!(!permission_matches("*.*.read", "billing.invoices.write"));
}

#[test]
fn an_exact_pattern_matches_only_itself() {
    assert!(permission_matches(
        "delivery.orders.read",
        "delivery.orders.read"
    ));
    assert!(!permission_matches(
        "delivery.orders.read",
        "delivery.orders.write"
    ));
    assert!(!permission_matches(
        "delivery.orders.read",
        "delivery.order.read"
    ));
}

#[test]
fn a_pattern_matches_only_permissions_with_as_many_segments() {
    assert!(!permission_matches("delivery.*", "delivery.orders.read"));
    assert!(!permission_matches(
        "delivery.*.*.*",
        "delivery.orders.read"
    ));
    assert!(!permission_matches(
        "delivery.orders.read",
        "delivery.orders"
    ));
}

#[test]
fn a_star_in_the_required_permission_is_not_a_wildcard() {
    assert!(!permission_matches(
        "delivery.orders.read",
        "delivery.*.read"
    ));
    assert!(!permission_matches("delivery.orders.read", "*"));
}

#[test]
fn empty_patterns_and_segments_never_match() {
    assert!(!permission_matches("", "delivery.orders.read"));
    assert!(!permission_matches("delivery..read", "delivery..read"));
    assert!(!permission_matches("*", ""));
}

#[test]
fn require_names_the_missing_permission_with_authz() {
    let claims = claims_with(&["delivery.orders.read"]);

    assert!(claims.require("delivery.orders.read").is_ok());
    let err = claims.require("delivery.orders.write").unwrap_err();

    assert_eq!(err.code(), ErrorCode::Authz);
    assert!(
        err.message().contains("delivery.orders.write"),
        "{}",
        err.message()
    );
}

#[test]
fn roles_alone_grant_nothing() {
    let mut claims = claims_with(&[]);
    claims.roles = vec![auth::roles::OWNER.to_owned()];

    assert_eq!(
        claims.require("tenancy.tenants.delete").unwrap_err().code(),
        ErrorCode::Authz
    );
}

#[test]
fn an_api_key_needs_both_a_permission_and_a_scope() {
    let mut key = claims_with(&["delivery.*.*"]);
    key.kind = PrincipalKind::ApiKey;
    key.scopes = vec!["delivery.orders.read".into()];

    assert!(key.require("delivery.orders.read").is_ok());
    assert!(key.require("delivery.orders.write").is_err());
    key.scopes.clear();
    assert!(
        key.require("delivery.orders.read").is_err(),
        "a key without scopes may do nothing"
    );
}

#[test]
fn a_token_without_a_tenant_cannot_act_for_one() {
    let mut claims = claims_with(&["*"]);
    claims.tid = None;

    assert_eq!(claims.tenant().unwrap_err().code(), ErrorCode::Authz);
}

#[test]
fn only_user_tokens_name_a_user() {
    let user = UserId::new();
    let mut claims = claims_with(&[]);
    claims.sub = user.to_string();
    assert_eq!(claims.user_id().unwrap(), user);

    claims.kind = PrincipalKind::Service;
    assert_eq!(claims.user_id().unwrap_err().code(), ErrorCode::Authz);
}

#[test]
fn a_request_without_claims_is_unauthenticated() {
    let request = Request::new(());
    assert_eq!(auth::claims(&request).unwrap_err().code(), ErrorCode::Authn);
}
