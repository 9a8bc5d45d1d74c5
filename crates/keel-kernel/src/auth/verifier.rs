//! [`JwtVerifier`]: checks an access token against identity's signing keys.
//!
//! Keys come from a JWKS, either fetched over HTTP from `auth.jwks_url` (every service but
//! identity) or handed over in-process (identity, which verifies with its own keys). Fetched keys
//! are cached; a token signed with an unknown `kid` triggers one refetch, at most once per
//! `jwks_min_refetch_secs`, so a flood of made-up `kid`s cannot turn into a flood of requests to
//! identity. Identity must therefore publish a new key at least that long before it signs with
//! it (it publishes ahead anyway, and keeps old keys until their last token expires).
//!
//! Rejections are AUTHN errors with short fixed messages; the token itself is never logged.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, Validation};

use super::Claims;
use super::jwks::{KeySet, PinnedKey, accepted_algorithm};
use crate::config::{AuthConfig, ConfigError};
use crate::error::Error;

/// Larger headers are refused unread; real access tokens are well under 2 KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// A JWKS larger than this is not identity's.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Fetched keys are re-read this often even when every `kid` is known, so a key that identity
/// withdrew (say, after a leak) stops verifying without restarting every service.
const KEYS_MAX_AGE: Duration = Duration::from_secs(300);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Verifies access tokens. Cheap to clone: clones share keys and the refetch state.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` for in-process keys, which change only through [`JwtVerifier::replace_keys`].
    remote: Option<Remote>,
    eddsa: Validation,
    rs256: Validation,
    cache: RwLock<Cache>,
    /// Held while fetching, so concurrent callers with the same unknown `kid` share one fetch.
    fetch: tokio::sync::Mutex<FetchState>,
}

struct Remote {
    url: String,
    http: reqwest::Client,
    min_refetch: Duration,
}

#[derive(Default)]
struct Cache {
    keys: KeySet,
    loaded_at: Option<Instant>,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
}

/// The parts of a JOSE header we act on. Parsed by hand rather than by `jsonwebtoken` so that an
/// algorithm it has no name for (`none`) gets the same clear refusal as any other.
#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Critical extensions must be understood or the token refused (RFC 7515 §4.1.11); we
    /// understand none. `jku`, `jwk`, `x5u` and friends are ignored: a token never picks its key.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

impl JwtVerifier {
    /// A verifier that fetches keys from `config.jwks_url` when it first needs them (so a service
    /// can start before identity is up).
    pub fn new(config: &AuthConfig) -> Result<Self, ConfigError> {
        // In-mesh traffic is plain HTTP: this build carries no TLS stack (see reqwest's features).
        if !config.jwks_url.starts_with("http://") {
            return Err(ConfigError::invalid(
                "auth.jwks_url",
                "must be an http:// URL",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|err| {
                ConfigError::invalid(
                    "auth.jwks_url",
                    format!("cannot build an HTTP client: {err}"),
                )
            })?;
        let remote = Remote {
            url: config.jwks_url.clone(),
            http,
            min_refetch: Duration::from_secs(config.jwks_min_refetch_secs),
        };
        Ok(JwtVerifier::build(config, Some(remote), KeySet::default()))
    }

    /// A verifier over keys held in-process (identity's own). Unusable keys are skipped and
    /// logged; see [`JwtVerifier::replace_keys`].
    pub fn from_jwks(config: &AuthConfig, jwks: &JwkSet) -> Self {
        JwtVerifier::build(config, None, KeySet::from_set(jwks))
    }

    fn build(config: &AuthConfig, remote: Option<Remote>, keys: KeySet) -> Self {
        let loaded_at = remote.is_none().then(Instant::now);
        JwtVerifier {
            inner: Arc::new(Inner {
                remote,
                eddsa: validation(Algorithm::EdDSA, config),
                rs256: validation(Algorithm::RS256, config),
                cache: RwLock::new(Cache { keys, loaded_at }),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
            }),
        }
    }

    /// Swap in a new key set (identity, after rotating). Returns how many keys are usable.
    pub fn replace_keys(&self, jwks: &JwkSet) -> usize {
        let keys = KeySet::from_set(jwks);
        let usable = keys.len();
        self.store(keys);
        usable
    }

    /// Fetch the JWKS now, whatever the refetch limit: for start-up warm-up or a readiness check.
    /// A no-op for in-process keys.
    pub async fn refresh(&self) -> Result<(), Error> {
        let Some(remote) = &self.inner.remote else {
            return Ok(());
        };
        let mut state = self.inner.fetch.lock().await;
        state.last_attempt = Some(Instant::now());
        let keys = fetch(remote).await?;
        self.store(keys);
        Ok(())
    }

    /// Verify `token` (the bare JWT, without `Bearer `) and return its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::unauthenticated("malformed token"));
        }
        let header = read_header(token)?;
        let Some(algorithm) = accepted_algorithm(&header.alg) else {
            return Err(Error::unauthenticated("token algorithm not accepted"));
        };
        if header.crit.is_some() {
            return Err(Error::unauthenticated(
                "token uses unsupported header extensions",
            ));
        }
        let kid = match header.kid.as_deref() {
            Some(kid) if !kid.is_empty() => kid,
            // Without a kid we would have to try keys until one fits: refuse instead.
            _ => return Err(Error::unauthenticated("token has no key id")),
        };
        let key = self.key_for(kid).await?;
        if key.algorithm != algorithm {
            return Err(Error::unauthenticated(
                "token algorithm does not match its key",
            ));
        }
        // Keys are pinned to EdDSA or RS256 only; each validation also lists just its own
        // algorithm, so `jsonwebtoken` re-checks the pinning.
        let validation = match key.algorithm {
            Algorithm::EdDSA => &self.inner.eddsa,
            _ => &self.inner.rs256,
        };
        jsonwebtoken::decode::<Claims>(token, &key.key, validation)
            .map(|data| data.claims)
            .map_err(rejection)
    }

    /// The key for `kid`, refetching the JWKS when it is unknown or the cache is old, within the
    /// refetch limit.
    async fn key_for(&self, kid: &str) -> Result<Arc<PinnedKey>, Error> {
        let (cached, fresh) = self.lookup(kid);
        let Some(remote) = &self.inner.remote else {
            return cached.ok_or_else(unknown_key);
        };
        if let (Some(key), true) = (&cached, fresh) {
            return Ok(key.clone());
        }
        let mut state = match &cached {
            // A known but old key: whoever gets the lock refreshes; the others go on with the
            // key they have rather than queueing behind a fetch they do not need.
            Some(key) => match self.inner.fetch.try_lock() {
                Ok(state) => state,
                Err(_) => return Ok(key.clone()),
            },
            None => self.inner.fetch.lock().await,
        };
        // Someone may have fetched while we waited for the lock.
        let (cached, fresh) = self.lookup(kid);
        if let (Some(key), true) = (&cached, fresh) {
            return Ok(key.clone());
        }
        let allowed = state
            .last_attempt
            .is_none_or(|at| at.elapsed() >= remote.min_refetch);
        if !allowed {
            return match cached {
                Some(key) => Ok(key),
                None if self.ever_loaded() => Err(unknown_key()),
                None => Err(Error::unavailable("signing keys unavailable")),
            };
        }
        state.last_attempt = Some(Instant::now());
        match fetch(remote).await {
            Ok(keys) => {
                let key = keys.get(kid);
                self.store(keys);
                key.ok_or_else(unknown_key)
            }
            // Identity being down must not log everyone out: keep verifying with the keys we
            // have, and only fail tokens whose key we never had.
            Err(err) => match cached {
                Some(key) => {
                    tracing::warn!(error = %err.message(), "JWKS refresh failed; using cached keys");
                    Ok(key)
                }
                None => Err(err),
            },
        }
    }

    fn lookup(&self, kid: &str) -> (Option<Arc<PinnedKey>>, bool) {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let fresh = self.inner.remote.is_none()
            || cache
                .loaded_at
                .is_some_and(|at| at.elapsed() < KEYS_MAX_AGE);
        (cache.keys.get(kid), fresh)
    }

    fn ever_loaded(&self) -> bool {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        cache.loaded_at.is_some()
    }

    fn store(&self, keys: KeySet) {
        // A panic elsewhere while holding the lock leaves only a whole old or new key set behind:
        // safe to keep using.
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *cache = Cache {
            keys,
            loaded_at: Some(Instant::now()),
        };
    }
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field(
                "jwks_url",
                &self.inner.remote.as_ref().map(|remote| &remote.url),
            )
            .field("issuer", &self.inner.eddsa.iss)
            .field("audience", &self.inner.eddsa.aud)
            .finish_non_exhaustive()
    }
}

fn validation(algorithm: Algorithm, config: &AuthConfig) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = config.leeway_secs;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    // Without these in the required set, a token that simply omits `iss` or `aud` would pass.
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation
}

fn read_header(token: &str) -> Result<RawHeader, Error> {
    let malformed = || Error::unauthenticated("malformed token");
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

async fn fetch(remote: &Remote) -> Result<KeySet, Error> {
    let unavailable =
        |cause: anyhow::Error| Error::unavailable("signing keys unavailable").with_cause(cause);
    let mut response = remote
        .http
        .get(&remote.url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|err| unavailable(err.into()))?;
    // Read in chunks so an oversized body is dropped without being buffered whole.
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| unavailable(err.into()))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(unavailable(anyhow::anyhow!(
                "JWKS larger than {MAX_JWKS_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let keys = KeySet::from_json(&body)
        .map_err(|err| unavailable(anyhow::anyhow!("JWKS is not valid JSON: {err}")))?;
    tracing::debug!(keys = keys.len(), "JWKS fetched");
    Ok(keys)
}

fn unknown_key() -> Error {
    Error::unauthenticated("unknown signing key")
}

/// A short, safe reason for each way `jsonwebtoken` can refuse a token.
fn rejection(err: jsonwebtoken::errors::Error) -> Error {
    let message = match err.kind() {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid",
        ErrorKind::InvalidSignature => "invalid token signature",
        ErrorKind::InvalidIssuer => "token issuer not accepted",
        ErrorKind::InvalidAudience => "token audience not accepted",
        ErrorKind::MissingRequiredClaim(claim) => {
            return Error::unauthenticated(format!("token has no {claim} claim"));
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => "token algorithm not accepted",
        ErrorKind::InvalidToken
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token",
        // Key-format and crypto-provider failures: our keys' fault, not the caller's, so worth a
        // log line; the caller still gets only a refusal. The enum is non-exhaustive, hence the
        // catch-all.
        other => {
            tracing::warn!(error = ?other, "token verification failed on our side");
            "invalid token"
        }
    };
    Error::unauthenticated(message)
}
