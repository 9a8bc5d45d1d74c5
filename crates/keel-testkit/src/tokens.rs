//! Token minting for tests: a stand-in for identity's signing side.
//!
//! [`TestIssuer::start`] generates an Ed25519 key, serves its JWKS over real HTTP on
//! `127.0.0.1:0`, and mints access tokens the kernel's verifier accepts, plus the broken ones
//! negative tests need (expired, wrong issuer or audience, `alg: none`, tampered, unknown `kid`).
//!
//! ```ignore
//! let issuer = TestIssuer::start().await;
//! let verifier = issuer.verifier();                       // or use issuer.auth_config()
//! let token = issuer.token(TokenSpec::any_user().tenant(tenant).perm("delivery.*.*"));
//! ```
//!
//! Test-support code: it panics with a message instead of returning errors, like an assertion.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keel_kernel::auth::{Claims, JwtVerifier, PrincipalKind};
use keel_kernel::config::AuthConfig;
use keel_kernel::{TenantId, UserId};

/// Where the test issuer serves its JWKS (the same path identity uses).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const TEST_ISSUER: &str = "keel-identity-test";
pub const TEST_AUDIENCE: &str = "keel";

/// What to put in a token. Start from [`TokenSpec::user`], [`TokenSpec::any_user`],
/// [`TokenSpec::api_key`] or [`TokenSpec::service`], then chain.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub sub: String,
    pub kind: PrincipalKind,
    pub tenant: Option<TenantId>,
    pub roles: Vec<String>,
    pub perms: Vec<String>,
    pub scopes: Vec<String>,
    pub session: Option<String>,
    /// The user's email and whether it is verified (none by default).
    pub email: Option<(String, bool)>,
    pub ttl: Duration,
}

impl TokenSpec {
    /// A user token with its own session id, valid for 15 minutes, with no tenant or rights yet.
    pub fn user(user: UserId) -> Self {
        TokenSpec {
            sub: user.to_string(),
            kind: PrincipalKind::User,
            tenant: None,
            roles: Vec::new(),
            perms: Vec::new(),
            scopes: Vec::new(),
            session: Some(uuid::Uuid::new_v4().to_string()),
            email: None,
            ttl: Duration::from_secs(15 * 60),
        }
    }

    /// A user token for a fresh random user.
    pub fn any_user() -> Self {
        TokenSpec::user(UserId::new())
    }

    /// An API-key principal of `tenant`; give it `perms` and `scopes` (both must allow a call).
    pub fn api_key(key_id: impl Into<String>, tenant: TenantId) -> Self {
        TokenSpec {
            sub: key_id.into(),
            kind: PrincipalKind::ApiKey,
            tenant: Some(tenant),
            session: None,
            email: None,
            ..TokenSpec::any_user()
        }
    }

    /// A service acting on its own behalf.
    pub fn service(name: impl Into<String>) -> Self {
        TokenSpec {
            sub: name.into(),
            kind: PrincipalKind::Service,
            session: None,
            email: None,
            ..TokenSpec::any_user()
        }
    }

    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    pub fn perm(mut self, perm: impl Into<String>) -> Self {
        self.perms.push(perm.into());
        self
    }

    pub fn perms<I: IntoIterator<Item = S>, S: Into<String>>(mut self, perms: I) -> Self {
        self.perms.extend(perms.into_iter().map(Into::into));
        self
    }

    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    pub fn session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }

    /// The user's email, verified or not.
    pub fn email(mut self, email: impl Into<String>, verified: bool) -> Self {
        self.email = Some((email.into(), verified));
        self
    }

    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
}

impl Default for TokenSpec {
    fn default() -> Self {
        TokenSpec::any_user()
    }
}

/// An Ed25519 signing key with its `kid` and public JWK.
#[derive(Clone)]
pub struct TestKey {
    kid: String,
    encoding: EncodingKey,
    public: [u8; 32],
}

impl TestKey {
    pub fn generate() -> Self {
        let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let der = signing
            .to_pkcs8_der()
            .expect("a fresh Ed25519 key always encodes as PKCS#8");
        TestKey {
            kid: format!("test-{}", uuid::Uuid::new_v4().simple()),
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            public: signing.verifying_key().to_bytes(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw public key: what an attacker would try as an HMAC secret.
    pub fn public_key_bytes(&self) -> &[u8; 32] {
        &self.public
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The public half as identity publishes it.
    pub fn jwk(&self) -> Jwk {
        keel_kernel::auth::ed25519_jwk(&self.kid, &self.public)
    }

    /// Sign `claims` with EdDSA under this key's `kid`.
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding)
    }
}

/// Sign with any header and key: for tokens no honest issuer would make.
pub fn encode<T: serde::Serialize>(header: &Header, claims: &T, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("test token signs")
}

struct Keys {
    current: TestKey,
    published: Vec<Jwk>,
}

struct Shared {
    keys: Mutex<Keys>,
    fetches: AtomicUsize,
    failing: AtomicBool,
}

impl Shared {
    fn keys(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A token issuer with a live JWKS endpoint. Dropping it stops the endpoint.
pub struct TestIssuer {
    issuer: String,
    audience: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::AbortHandle,
}

impl TestIssuer {
    /// Issuer [`TEST_ISSUER`], audience [`TEST_AUDIENCE`]. Needs a Tokio runtime.
    pub async fn start() -> Self {
        TestIssuer::start_with(TEST_ISSUER, TEST_AUDIENCE).await
    }

    pub async fn start_with(issuer: &str, audience: &str) -> Self {
        let current = TestKey::generate();
        let shared = Arc::new(Shared {
            keys: Mutex::new(Keys {
                published: vec![current.jwk()],
                current,
            }),
            fetches: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the test JWKS endpoint on 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let app = axum::Router::new()
            .route(JWKS_PATH, axum::routing::get(serve_jwks))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            // Ends only when aborted on drop, or if the listener dies, which fails the test's fetches.
            let _ = axum::serve(listener, app).await;
        })
        .abort_handle();
        TestIssuer {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            addr,
            shared,
            server,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}{JWKS_PATH}", self.addr)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Config for a verifier of this issuer's tokens. The refetch limit is 0 so a rotated key is
    /// picked up at once; tests of the limit itself set their own.
    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            jwks_url: self.jwks_url(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            jwks_min_refetch_secs: 0,
            leeway_secs: 5,
        }
    }

    /// A verifier that fetches this issuer's JWKS over HTTP.
    pub fn verifier(&self) -> JwtVerifier {
        JwtVerifier::new(&self.auth_config()).expect("the test issuer's config is valid")
    }

    /// The published key set, as served.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.shared.keys().published.clone(),
        }
    }

    /// The `kid` of the key that signs now.
    pub fn kid(&self) -> String {
        self.shared.keys().current.kid.clone()
    }

    /// The key that signs now.
    pub fn current_key(&self) -> TestKey {
        self.shared.keys().current.clone()
    }

    /// How many times the JWKS has been fetched.
    pub fn fetch_count(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// A new key signs from now on and is published; old keys stay published. Returns its kid.
    pub fn rotate(&self) -> String {
        let next = TestKey::generate();
        let kid = next.kid.clone();
        let mut keys = self.shared.keys();
        keys.published.push(next.jwk());
        keys.current = next;
        kid
    }

    /// Stop publishing every key but the current one.
    pub fn retire_old_keys(&self) {
        let mut keys = self.shared.keys();
        let kid = keys.current.kid.clone();
        keys.published
            .retain(|jwk| jwk.common.key_id.as_deref() == Some(kid.as_str()));
    }

    /// Publish another key (an RSA one, a bogus one) next to the issuer's own.
    pub fn publish(&self, jwk: Jwk) {
        self.shared.keys().published.push(jwk);
    }

    /// Make the JWKS endpoint answer 503 (identity down) until called again with `false`.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// The claims a token for `spec` carries, issued now.
    pub fn claims(&self, spec: &TokenSpec) -> Claims {
        let now = unix_now();
        Claims {
            sub: spec.sub.clone(),
            kind: spec.kind,
            tid: spec.tenant,
            roles: spec.roles.clone(),
            perms: spec.perms.clone(),
            sid: spec.session.clone(),
            scopes: spec.scopes.clone(),
            email: spec.email.as_ref().map(|(email, _)| email.clone()),
            email_verified: spec.email.as_ref().is_some_and(|(_, verified)| *verified),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + spec.ttl.as_secs() as i64,
            iat: now,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// A valid access token.
    pub fn token(&self, spec: TokenSpec) -> String {
        self.sign(&self.claims(&spec))
    }

    /// Sign any claims with the current key.
    pub fn sign(&self, claims: &Claims) -> String {
        self.current_key().sign(claims)
    }

    /// Expired an hour ago: beyond any leeway.
    pub fn expired_token(&self, spec: TokenSpec) -> String {
        let mut claims = self.claims(&spec);
        claims.iat -= 7_200;
        claims.exp = claims.iat + 3_600;
        self.sign(&claims)
    }

    /// Valid only from an hour from now.
    pub fn not_yet_valid_token(&self, spec: TokenSpec) -> String {
        let mut claims = self.claims(&spec);
        claims.nbf = Some(claims.iat + 3_600);
        self.sign(&claims)
    }

    pub fn wrong_issuer_token(&self, spec: TokenSpec) -> String {
        let mut claims = self.claims(&spec);
        claims.iss = format!("not-{}", self.issuer);
        self.sign(&claims)
    }

    pub fn wrong_audience_token(&self, spec: TokenSpec) -> String {
        let mut claims = self.claims(&spec);
        claims.aud = format!("not-{}", self.audience);
        self.sign(&claims)
    }

    /// Correctly signed by a key that was never published.
    pub fn unknown_kid_token(&self, spec: TokenSpec) -> String {
        TestKey::generate().sign(&self.claims(&spec))
    }

    /// Signed with the current key but without a `kid` header.
    pub fn no_kid_token(&self, spec: TokenSpec) -> String {
        encode(
            &Header::new(Algorithm::EdDSA),
            &self.claims(&spec),
            &self.current_key().encoding,
        )
    }

    /// An unsigned token (`alg: none`, empty signature) naming the current `kid`.
    pub fn alg_none_token(&self, spec: TokenSpec) -> String {
        let header = serde_json::json!({ "alg": "none", "typ": "JWT", "kid": self.kid() });
        let claims = serde_json::to_vec(&self.claims(&spec)).expect("claims serialise");
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    /// A valid token whose payload was then changed to grant everything, signature kept.
    pub fn tampered_token(&self, spec: TokenSpec) -> String {
        let mut claims = self.claims(&spec);
        let token = self.sign(&claims);
        claims.perms = vec!["*".to_owned()];
        let payload = serde_json::to_vec(&claims).expect("claims serialise");
        let mut parts: Vec<&str> = token.split('.').collect();
        let payload = URL_SAFE_NO_PAD.encode(payload);
        parts[1] = &payload;
        parts.join(".")
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve_jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    if shared.failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let jwks = JwkSet {
        keys: shared.keys().published.clone(),
    };
    axum::Json(jwks).into_response()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// Write a fresh Ed25519 private key to `path` as a PKCS#8 PEM file, exactly what
/// `openssl genpkey -algorithm ed25519` writes: identity's signing-key format. Returns the PKCS#8
/// DER, for tests that sign with the same key.
pub fn write_ed25519_pem(path: &std::path::Path) -> Vec<u8> {
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let der = signing
        .to_pkcs8_der()
        .expect("a fresh Ed25519 key always encodes as PKCS#8");
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    std::fs::write(path, pem).expect("write the key file");
    der.as_bytes().to_vec()
}
