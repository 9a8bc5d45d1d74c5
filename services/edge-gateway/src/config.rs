//! The gateway's configuration: `config/edge-gateway.yaml` (listener, auth, telemetry, where the
//! route table is) and the route table it names (`config/routes.yaml`: upstreams, which gRPC
//! services they serve, rate limits, CORS, forwarded headers; which methods are public comes from
//! the protos).
//!
//! Both are strict (`deny_unknown_fields`) and a bad file stops start-up with the line at fault:
//! shape and value errors come from serde_yaml with their location; references that can only be
//! checked later (an upstream or proto method that does not exist) are located by searching the
//! text for the offending name. `KEEL__SECTION__KEY` environment variables override keys of the
//! main file, as in every other service: the loader, its errors and the line search are the
//! kernel's ([`keel_kernel::config`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use keel_kernel::config::{AdminConfig, ConfigError, Source, parse, parse_with_env};
use keel_kernel::config::{AuthConfig, NatsConfig, TelemetryConfig, read};
use serde::Deserialize;

/// `config/edge-gateway.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Log field, metrics label, error domain.
    #[serde(default = "default_service")]
    pub service: String,
    pub http: HttpConfig,
    /// A separate listener for `/metrics` (and `/healthz`, `/readyz`): the kernel's admin server,
    /// so scrapes do not share the public port. Without it `/metrics` is served on the main
    /// listener.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Where identity publishes its JWKS, and the issuer and audience tokens must carry.
    pub auth: AuthConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The route table, relative to this file.
    pub routes: PathBuf,
    /// The broker identity publishes revocations on (`identity.session.revoked`,
    /// `identity.api_key.revoked`). Connect as the `edge-gateway` NATS user: it may read the
    /// stream through its own ephemeral consumers and publish nothing. Without it, a revoked key
    /// works until its cache entry expires and a revoked session's tokens until they expire.
    #[serde(default)]
    pub nats: Option<NatsConfig>,
    #[serde(default)]
    pub revocation: RevocationConfig,
}

/// How long a revocation is remembered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// Identity's longest access-token lifetime (`app.tokens.access_ttl_secs`). Revocation
    /// events carry no expiry, so a revoked session (or API key) is denied this long after the
    /// event: every token it had was minted before the revocation and expires within this time.
    #[serde(default = "default_access_token_ttl_secs")]
    pub access_token_ttl_secs: u64,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            access_token_ttl_secs: default_access_token_ttl_secs(),
        }
    }
}

fn default_access_token_ttl_secs() -> u64 {
    15 * 60
}

fn default_service() -> String {
    "edge-gateway".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `127.0.0.1:0` picks a free port (tests).
    pub listen: SocketAddr,
    /// Larger request bodies are refused with 413 before they are read.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight requests (and open streams) before cutting them.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// How many proxies in front of the gateway append the address they saw to
    /// `X-Forwarded-For` (an ingress controller, a cloud load balancer: count each). The client's
    /// address is the entry that many from the right; 0 (the default, for a gateway at the real
    /// edge) takes the TCP peer and ignores the header. Too high a count lets a client choose its
    /// address; the gateway must be reachable only through those proxies.
    #[serde(default)]
    pub trusted_proxies: usize,
    /// Send `Strict-Transport-Security` (when TLS terminates in front of the gateway).
    #[serde(default)]
    pub hsts: bool,
    /// Terminate TLS here (rustls; ALPN `h2` and `http/1.1`) instead of in front of the gateway.
    /// Without it the listener speaks cleartext HTTP/1.1 and HTTP/2 (prior knowledge, h2c).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Response compression (gzip, br, zstd) by `Accept-Encoding`.
    #[serde(default)]
    pub compression: CompressionConfig,
    /// A strong `ETag` (a hash of the body) on successful JSON answers to GET, and 304 for an
    /// `If-None-Match` naming it.
    #[serde(default = "default_true")]
    pub etags: bool,
}

fn default_true() -> bool {
    true
}

/// `http.compression`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Smaller bodies are sent as they are.
    #[serde(default = "default_compression_min_size")]
    pub min_size_bytes: u16,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            min_size_bytes: default_compression_min_size(),
        }
    }
}

fn default_compression_min_size() -> u16 {
    1024
}

/// `http.tls`: PEM files, relative to this file; reloaded when they change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often the files are checked for a renewal.
    #[serde(default = "default_tls_reload_interval_ms")]
    pub reload_interval_ms: NonZeroU64,
    /// A client that has not finished its handshake by then is dropped.
    #[serde(default = "default_tls_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

fn default_tls_reload_interval_ms() -> NonZeroU64 {
    NonZeroU64::new(5_000).unwrap_or(NonZeroU64::MIN)
}
fn default_tls_handshake_timeout_ms() -> u64 {
    10_000
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}

// ---------------------------------------------------------------------------------------------
// The route table
// ---------------------------------------------------------------------------------------------

/// `config/routes.yaml`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    /// gRPC backends by name.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Exposed gRPC services by full name (`identity.v1.AuthService`): every method with a
    /// `google.api.http` annotation becomes reachable.
    pub services: BTreeMap<String, ServiceRoute>,
    #[serde(default)]
    pub rate_limits: RateLimits,
    #[serde(default)]
    pub cors: CorsConfig,
    /// Client headers forwarded to upstreams as gRPC metadata, besides the ones the gateway
    /// always sets (`authorization`, `x-request-id`, `traceparent`, `x-keel-client-ip`). Internal
    /// headers (`x-tenant-id`, `x-user-id`, `x-roles`, ...) cannot be listed.
    #[serde(default)]
    pub forward_headers: Vec<ForwardHeader>,
    /// Exchanging `X-Api-Key` secrets through identity.
    #[serde(default)]
    pub api_keys: Option<ApiKeyConfig>,
    /// Refusing suspended tenants and modules a tenant does not have, from tenancy.
    #[serde(default)]
    pub entitlements: Option<EntitlementsConfig>,
    /// Routes that hand the request body over untouched instead of transcoding JSON: receivers of
    /// signed callbacks (payment webhooks), whose signature covers the exact bytes.
    #[serde(default)]
    pub raw_routes: Vec<RawRoute>,
}

/// A `POST` route whose body reaches a gRPC method as one `bytes` field, exactly as received.
/// It carries no user credentials, so its method must be declared public in its proto (the
/// method authenticates the sender itself, e.g. by an HMAC signature over the body).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Path template, e.g. `/webhooks/payments/{provider}`; each variable sets the request field
    /// of its name.
    pub path: String,
    /// Full method name, e.g. `billing.v1.BillingService.IngestWebhook`.
    pub rpc: String,
    /// A key of `upstreams`.
    pub upstream: String,
    /// The `bytes` field that receives the body.
    pub body_field: String,
    /// Request headers copied into string fields: header name -> field name.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Larger bodies are refused with 413 (default: `http.max_body_bytes`).
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// The route's own per-IP policy (default: `rate_limits.public`).
    #[serde(default)]
    pub rate_limit: Option<RateSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `host:port` or `http://host:port` (h2c).
    #[serde(default)]
    pub address: Option<UpstreamAddress>,
    /// Instead of `address`: replicas of the service, balanced per request (power of two
    /// choices on in-flight load); one that cannot be reached is left out until it can.
    #[serde(default)]
    pub addresses: Vec<UpstreamAddress>,
    /// Calls (unary) allowed in flight to this upstream at once; more wait at the edge, in
    /// arrival order, instead of piling onto the service. Streams are not counted.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: NonZeroU32,
    /// How long a call may wait for its turn (bounded further by the call's own deadline);
    /// one that would wait longer is answered 503 with `Retry-After`.
    #[serde(default = "default_queue_timeout_ms")]
    pub queue_timeout_ms: u64,
    /// Calls allowed to wait at once; beyond it, 503 straight away.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// Per call; past it the client gets 504. For streams: until the first message, and then
    /// between messages.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: NonZeroU64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: NonZeroU64,
    /// Extra attempts for idempotent (GET) calls that fail with UNAVAILABLE. Never for others:
    /// a POST that reached the service may have had its effect.
    #[serde(default)]
    pub retries: u32,
}

fn default_max_in_flight() -> NonZeroU32 {
    NonZeroU32::new(256).unwrap_or(NonZeroU32::MIN)
}
fn default_queue_timeout_ms() -> u64 {
    2_000
}
fn default_max_queue() -> usize {
    10_000
}

fn default_timeout_ms() -> NonZeroU64 {
    NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN)
}
fn default_connect_timeout_ms() -> NonZeroU64 {
    NonZeroU64::new(1_000).unwrap_or(NonZeroU64::MIN)
}

impl UpstreamConfig {
    /// Every address calls may go to.
    pub fn all_addresses(&self) -> Vec<&UpstreamAddress> {
        self.address.iter().chain(&self.addresses).collect()
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.get())
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.get())
    }
}

/// An upstream's URI, always `http://host:port`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct UpstreamAddress(pub http::Uri);

impl TryFrom<String> for UpstreamAddress {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let with_scheme = if value.contains("://") {
            value.clone()
        } else {
            format!("http://{value}")
        };
        let uri: http::Uri = with_scheme
            .parse()
            .map_err(|err| format!("`{value}` is not host:port: {err}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "`{value}`: only plain h2c (http://) upstreams are supported"
            ));
        }
        if uri.port_u16().is_none() || uri.path() != "/" {
            return Err(format!("`{value}` must be host:port with nothing after it"));
        }
        Ok(UpstreamAddress(uri))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRoute {
    /// A key of `upstreams`.
    pub upstream: String,
    /// The module a tenant must have enabled to call this service (`delivery`, `ai`, ...). The
    /// tenant must also be ACTIVE. Needs the `entitlements` section.
    #[serde(default)]
    pub module: Option<String>,
    /// Refuse tenant-scoped calls for a tenant that is not ACTIVE (implied by `module`). Needs the
    /// `entitlements` section.
    #[serde(default)]
    pub active_tenant: bool,
    /// Overrides the default policy for every method of the service.
    #[serde(default)]
    pub rate_limit: Option<RateSpec>,
    /// Per-method settings, by the method's proto name (`Login`).
    #[serde(default)]
    pub methods: BTreeMap<String, MethodRoute>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodRoute {
    // Whether a method is callable without credentials is not set here: the proto declares it
    // (`keel.v1.access`), and an old `public:` key is refused as an unknown field.
    /// Whether a `{tenant_id}` in the path must equal the token's `tid` (default true). Turn off
    /// only for methods whose service authorises cross-tenant callers itself (platform admins
    /// approving tenants, a member reading a tenant before switching to it).
    #[serde(default)]
    pub tenant_match: Option<bool>,
    #[serde(default)]
    pub rate_limit: Option<RateSpec>,
    /// A server stream that may stay quiet for long (a watch): instead of ending it after the
    /// upstream's `timeout_ms` without a message, the gateway sends a keep-alive (an SSE comment)
    /// every `timeout_ms` and keeps it open until the client or the service ends it.
    #[serde(default)]
    pub long_lived: bool,
}

/// A GCRA policy: `rate` requests per `per_secs`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateSpec {
    pub rate: NonZeroU32,
    #[serde(default = "default_per_secs")]
    pub per_secs: NonZeroU32,
    pub burst: NonZeroU32,
}

fn default_per_secs() -> NonZeroU32 {
    NonZeroU32::MIN
}

/// 30 failures at once, then one a second: a client with a stale token retries a handful of
/// times; a guesser gets 3,600 tries an hour per address instead of as many as it can send.
fn default_failed_auth() -> RateSpec {
    RateSpec {
        rate: NonZeroU32::MIN,
        per_secs: NonZeroU32::MIN,
        burst: NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN),
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            failed_auth: default_failed_auth(),
            public: None,
            tenant: None,
            api_key: None,
            user: None,
        }
    }
}

/// Default policies by who is calling. A route's own `rate_limit` replaces the default for it,
/// with its own buckets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Failed authentication, per client IP, on every route: a bad token or API key, or a
    /// public method (login, refresh) answering UNAUTHENTICATED. Once spent, requests that carry
    /// a credential or call a public route are answered 429 before any upstream is asked.
    #[serde(default = "default_failed_auth")]
    pub failed_auth: RateSpec,
    /// Public routes, per client IP.
    #[serde(default)]
    pub public: Option<RateSpec>,
    /// Tenant-scoped tokens, per tenant.
    #[serde(default)]
    pub tenant: Option<RateSpec>,
    /// API keys, per key.
    #[serde(default)]
    pub api_key: Option<RateSpec>,
    /// Unscoped user tokens, per user.
    #[serde(default)]
    pub user: Option<RateSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`); `*` allows any origin (credentials are never
    /// allowed cross-origin: tokens travel in `Authorization`, not cookies).
    #[serde(default)]
    pub allowed_origins: Vec<CorsOrigin>,
    #[serde(default = "default_cors_max_age")]
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: Vec::new(),
            max_age_secs: default_cors_max_age(),
        }
    }
}

fn default_cors_max_age() -> u64 {
    600
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct CorsOrigin(pub String);

impl TryFrom<String> for CorsOrigin {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value == "*" {
            return Ok(CorsOrigin(value));
        }
        let uri: http::Uri = value
            .parse()
            .map_err(|_| format!("`{value}` is not an origin"))?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        if !scheme_ok || uri.host().is_none() || value.ends_with('/') || uri.path() != "/" {
            return Err(format!(
                "`{value}` is not an origin like https://app.example.com"
            ));
        }
        Ok(CorsOrigin(value))
    }
}

/// A header name that may be forwarded: valid, lowercase, and not one the gateway owns.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct ForwardHeader(pub http::HeaderName);

impl TryFrom<String> for ForwardHeader {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let name = http::HeaderName::try_from(value.to_ascii_lowercase())
            .map_err(|_| format!("`{value}` is not a header name"))?;
        if crate::headers::is_reserved(name.as_str()) {
            return Err(format!(
                "`{value}` is set or stripped by the gateway itself and cannot be forwarded from clients"
            ));
        }
        Ok(ForwardHeader(name))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The upstream serving `identity.v1.AuthService/ExchangeApiKey`.
    pub upstream: String,
    /// How long an exchange is reused (never past the minted token's own lifetime).
    #[serde(default = "default_api_key_cache_secs")]
    pub cache_secs: u64,
}

fn default_api_key_cache_secs() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementsConfig {
    /// The upstream serving `tenancy.v1.ModuleService/GetEntitlements`.
    pub upstream: String,
    #[serde(default = "default_entitlements_cache_secs")]
    pub cache_secs: u64,
}

fn default_entitlements_cache_secs() -> u64 {
    10
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// A loaded configuration: the main file, its route table, and the route table's text (to locate
/// reference errors found later, against the descriptors).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: GatewayConfig,
    pub routes: RouteTable,
    pub routes_source: Source,
}

impl Loaded {
    /// Read the main file at `path` (with `KEEL__*` overrides from the process environment) and
    /// the route table it names.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = read(path)?;
        let mut config: GatewayConfig = parse_with_env(&text, path, std::env::vars())?;
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Some(tls) = &mut config.http.tls {
            tls.cert_file = dir.join(&tls.cert_file);
            tls.key_file = dir.join(&tls.key_file);
        }
        let routes_path = dir.join(&config.routes);
        let routes_text = read(&routes_path)?;
        Loaded::from_parts(config, &routes_text, &routes_path)
    }

    /// A configuration from an already parsed main file and the route table's text.
    pub fn from_parts(
        config: GatewayConfig,
        routes_text: &str,
        routes_path: &Path,
    ) -> Result<Loaded, ConfigError> {
        let routes: RouteTable = parse(routes_text, routes_path)?;
        let source = Source {
            path: routes_path.to_owned(),
            text: routes_text.to_owned(),
        };
        validate(&config, &routes, &source)?;
        Ok(Loaded {
            config,
            routes,
            routes_source: source,
        })
    }
}

/// Checks across sections. Checks against the descriptors happen when the router is built.
fn validate(
    config: &GatewayConfig,
    routes: &RouteTable,
    source: &Source,
) -> Result<(), ConfigError> {
    if !config.auth.jwks_url.starts_with("http://") {
        return Err(ConfigError::invalid(
            "auth.jwks_url",
            "must be an http:// URL",
        ));
    }
    if config.http.max_body_bytes == 0 {
        return Err(ConfigError::invalid(
            "http.max_body_bytes",
            "must be positive",
        ));
    }
    for (name, upstream) in &routes.upstreams {
        if upstream.address.is_some() != upstream.addresses.is_empty() {
            return Err(source.error_at(
                name,
                format!("upstream `{name}`: give either `address` or a non-empty `addresses` list"),
            ));
        }
    }
    let known = |name: &str| routes.upstreams.contains_key(name);
    for (service, route) in &routes.services {
        if !known(&route.upstream) {
            return Err(source.error_at(
                &route.upstream,
                format!(
                    "service {service}: upstream `{}` is not defined under `upstreams`",
                    route.upstream
                ),
            ));
        }
        if (route.module.is_some() || route.active_tenant) && routes.entitlements.is_none() {
            return Err(source.error_at(
                service,
                format!("service {service} checks tenants (`module` or `active_tenant`), which needs the `entitlements` section"),
            ));
        }
    }
    for raw in &routes.raw_routes {
        if !known(&raw.upstream) {
            return Err(source.error_at(
                &raw.upstream,
                format!(
                    "raw route {}: upstream `{}` is not defined under `upstreams`",
                    raw.path, raw.upstream
                ),
            ));
        }
        if raw.max_body_bytes == Some(0) {
            return Err(source.error_at(
                &raw.path,
                format!("raw route {}: max_body_bytes must be positive", raw.path),
            ));
        }
    }
    if let Some(api_keys) = &routes.api_keys
        && !known(&api_keys.upstream)
    {
        return Err(source.error_at(
            &api_keys.upstream,
            format!(
                "api_keys.upstream `{}` is not defined under `upstreams`",
                api_keys.upstream
            ),
        ));
    }
    if let Some(entitlements) = &routes.entitlements
        && !known(&entitlements.upstream)
    {
        return Err(source.error_at(
            &entitlements.upstream,
            format!(
                "entitlements.upstream `{}` is not defined under `upstreams`",
                entitlements.upstream
            ),
        ));
    }
    Ok(())
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} per {} s (burst {})",
            self.rate, self.per_secs, self.burst
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: &str = "
http:
  listen: 127.0.0.1:0
auth:
  jwks_url: http://127.0.0.1:9/jwks
  issuer: keel
  audience: keel
routes: routes.yaml
";

    fn main_config() -> GatewayConfig {
        parse_with_env(MAIN, Path::new("gw.yaml"), Vec::new()).expect("valid main config")
    }

    fn routes(text: &str) -> Result<Loaded, ConfigError> {
        Loaded::from_parts(main_config(), text, Path::new("routes.yaml"))
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line() {
        let err = routes("upstreams: {}\nservices: {}\ncors:\n  alowed_origins: []\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("alowed_origins") && text.contains("line 4"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_value_is_refused_with_its_line() {
        let text = "upstreams:\n  a:\n    address: 127.0.0.1:1\n    timeout_ms: 0\nservices: {}\n";
        let err = routes(text).unwrap_err().to_string();
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn an_internal_header_cannot_be_forwarded() {
        let err = routes(
            "upstreams: {}\nservices: {}\nforward_headers: [accept-language, X-Tenant-Id]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("X-Tenant-Id") && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn an_undefined_upstream_is_refused_at_the_line_naming_it() {
        let text = "upstreams:\n  identity: { address: 127.0.0.1:1 }\nservices:\n  a.v1.S:\n    upstream: identiti\n";
        let err = routes(text).unwrap_err().to_string();
        assert!(err.contains("line 5") && err.contains("identiti"), "{err}");
    }

    #[test]
    fn environment_overrides_apply_to_the_main_file() {
        let env = vec![("KEEL__HTTP__LISTEN".to_owned(), "127.0.0.1:8181".to_owned())];
        let config: GatewayConfig = parse_with_env(MAIN, Path::new("gw.yaml"), env).expect("valid");
        assert_eq!(config.http.listen.port(), 8181);
    }

    #[test]
    fn a_bad_upstream_address_is_refused() {
        let err = routes("upstreams:\n  a: { address: \"https://x:1\" }\nservices: {}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("h2c") && err.contains("line 2"), "{err}");
    }
}
