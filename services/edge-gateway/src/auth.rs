//! Authentication at the edge: a bearer JWT verified with the kernel's [`JwtVerifier`] (identity's
//! JWKS, cached, refetched on an unknown `kid` at most once per interval), or an API key
//! (`X-Api-Key: <secret>` or `Authorization: ApiKey <secret>`) exchanged through identity's
//! `ExchangeApiKey` for a short-lived token, cached briefly.
//!
//! Verified tokens are cached by their exact text until they expire (at most a minute), so a
//! client's stream of requests costs one signature check, not one each.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, header};
use keel_kernel::auth::{Claims, JwtVerifier, PrincipalKind};
use keel_kernel::{Error, ErrorCode};
use keel_proto::identity::v1::ExchangeApiKeyRequest;
use keel_proto::identity::v1::auth_service_client::AuthServiceClient;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use crate::headers::{API_KEY, REQUEST_ID};
use crate::problem::Problem;
use crate::upstream::Upstream;

/// A verified token is trusted from the cache at most this long (a key identity withdrew stops
/// working within this time, as with the verifier's own key cache).
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(60);
const TOKEN_CACHE_MAX: usize = 50_000;
/// A refused API key is refused from the cache for this long, so a bad key cannot hammer identity.
const BAD_KEY_TTL: Duration = Duration::from_secs(5);
const KEY_CACHE_MAX: usize = 10_000;

/// Who is calling, once verified.
#[derive(Debug, Clone)]
pub struct Principal {
    pub claims: Arc<Claims>,
    /// `Bearer <jwt>`: what the upstream receives as `authorization`.
    pub authorization: HeaderValue,
    /// The API key's id, when the caller used one.
    pub api_key: Option<Arc<str>>,
}

/// The credential a request carries.
enum Credential<'a> {
    None,
    Bearer(&'a HeaderValue, &'a str),
    ApiKey(&'a str),
}

/// Verified tokens by their text, with when to stop trusting the entry.
type TokenCache = RwLock<HashMap<Arc<str>, (Instant, Arc<Claims>)>>;

pub struct Authenticator {
    verifier: JwtVerifier,
    tokens: TokenCache,
    api_keys: Option<ApiKeys>,
}

struct ApiKeys {
    client: AuthServiceClient<Channel>,
    timeout: Duration,
    cache_for: Duration,
    cache: RwLock<HashMap<[u8; 32], CachedKey>>,
}

#[derive(Clone)]
enum CachedKey {
    Valid(Instant, Principal),
    Refused(Instant, Problem),
}

impl Authenticator {
    /// `exchange`: the upstream serving identity's `ExchangeApiKey`, and how long to cache.
    pub fn new(verifier: JwtVerifier, exchange: Option<(&Upstream, Duration)>) -> Authenticator {
        Authenticator {
            verifier,
            tokens: RwLock::new(HashMap::new()),
            api_keys: exchange.map(|(upstream, cache_for)| ApiKeys {
                client: AuthServiceClient::new(upstream.channel.clone()),
                timeout: upstream.timeout,
                cache_for,
                cache: RwLock::new(HashMap::new()),
            }),
        }
    }

    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// The caller, `None` when the route is public and no usable credential came with the
    /// request, or the problem to answer with. On public routes a bad credential is ignored
    /// (a caller whose token expired must still be able to log in).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        public: bool,
        request_id: &HeaderValue,
    ) -> Result<Option<Principal>, Problem> {
        let credential = match credential(headers) {
            Ok(credential) => credential,
            Err(_) if public => return Ok(None),
            Err(problem) => return Err(problem),
        };
        let verified = match credential {
            Credential::None if public => return Ok(None),
            Credential::None => Err(Problem::unauthenticated(
                "missing credentials: send `Authorization: Bearer <token>` or an API key",
            )),
            Credential::Bearer(header, token) => self.bearer(header, token).await,
            Credential::ApiKey(secret) => self.api_key(secret, request_id).await,
        };
        match verified {
            Ok(principal) => Ok(Some(principal)),
            Err(_) if public => Ok(None),
            Err(problem) => Err(problem),
        }
    }

    async fn bearer(&self, header: &HeaderValue, token: &str) -> Result<Principal, Problem> {
        let claims = self.verify(token).await?;
        // An API key's token (minted by identity for the gateway) identifies the key.
        let api_key =
            (claims.kind == PrincipalKind::ApiKey).then(|| Arc::from(claims.sub.as_str()));
        Ok(Principal {
            claims,
            authorization: header.clone(),
            api_key,
        })
    }

    /// Verify, through the cache of verified tokens.
    async fn verify(&self, token: &str) -> Result<Arc<Claims>, Problem> {
        let now = Instant::now();
        {
            let cache = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((until, claims)) = cache.get(token)
                && *until > now
            {
                return Ok(claims.clone());
            }
        }
        let claims = Arc::new(
            self.verifier
                .verify(token)
                .await
                .map_err(|err| problem_from(&err))?,
        );
        let lifetime = claims.exp.saturating_sub(unix_now());
        if lifetime > 0 {
            let until = now + TOKEN_CACHE_TTL.min(Duration::from_secs(lifetime.unsigned_abs()));
            let mut cache = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.retain(|_, (until, _)| *until > now);
                if cache.len() >= TOKEN_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(Arc::from(token), (until, claims.clone()));
        }
        Ok(claims)
    }

    async fn api_key(&self, secret: &str, request_id: &HeaderValue) -> Result<Principal, Problem> {
        let Some(keys) = &self.api_keys else {
            return Err(Problem::unauthenticated("API keys are not accepted here"));
        };
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let now = Instant::now();
        let cached = keys
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
            .cloned();
        match cached {
            Some(CachedKey::Valid(until, principal)) if until > now => return Ok(principal),
            Some(CachedKey::Refused(until, problem)) if until > now => return Err(problem),
            _ => {}
        }
        let outcome = self.exchange(keys, secret, request_id).await;
        let entry = match &outcome {
            Ok((principal, lifetime)) => Some(CachedKey::Valid(
                now + keys.cache_for.min(*lifetime),
                principal.clone(),
            )),
            Err(problem) if problem.code == ErrorCode::Authn => {
                Some(CachedKey::Refused(now + BAD_KEY_TTL, problem.clone()))
            }
            // Identity being unreachable is not the key's fault: ask again next time.
            Err(_) => None,
        };
        if let Some(entry) = entry {
            let mut cache = keys.cache.write().unwrap_or_else(PoisonError::into_inner);
            if cache.len() >= KEY_CACHE_MAX {
                cache.clear();
            }
            cache.insert(digest, entry);
        }
        outcome.map(|(principal, _)| principal)
    }

    async fn exchange(
        &self,
        keys: &ApiKeys,
        secret: &str,
        request_id: &HeaderValue,
    ) -> Result<(Principal, Duration), Problem> {
        let mut request = tonic::Request::new(ExchangeApiKeyRequest {
            secret: secret.to_owned(),
        });
        request.set_timeout(keys.timeout);
        if let Some(value) = request_id.to_str().ok().and_then(|id| id.parse().ok()) {
            request.metadata_mut().insert(REQUEST_ID, value);
        }
        let mut client = keys.client.clone();
        let response =
            match tokio::time::timeout(keys.timeout, client.exchange_api_key(request)).await {
                Err(_) => {
                    return Err(Problem::timeout(
                        "the identity service did not answer in time",
                    ));
                }
                Ok(Err(status)) if status.code() == tonic::Code::Unauthenticated => {
                    return Err(Problem::unauthenticated("invalid API key"));
                }
                Ok(Err(status)) => return Err(Problem::from_status(&status, "identity")),
                Ok(Ok(response)) => response.into_inner(),
            };
        let claims = self.verify(&response.access_token).await.map_err(|problem| {
            tracing::warn!(detail = %problem.detail, "identity minted an API-key token the gateway cannot verify");
            Problem::unavailable("API key authentication is unavailable")
        })?;
        let authorization = HeaderValue::try_from(format!("Bearer {}", response.access_token))
            .map_err(|_| Problem::unavailable("API key authentication is unavailable"))?;
        let lifetime = Duration::from_secs(
            u64::try_from(response.expires_in)
                .unwrap_or(0)
                .saturating_sub(5),
        );
        let key_id = if response.key_id.is_empty() {
            claims.sub.clone()
        } else {
            response.key_id
        };
        Ok((
            Principal {
                claims,
                authorization,
                api_key: Some(Arc::from(key_id)),
            },
            lifetime,
        ))
    }
}

fn credential(headers: &HeaderMap) -> Result<Credential<'_>, Problem> {
    let malformed = || Problem::unauthenticated("malformed Authorization header");
    let mut authorizations = headers.get_all(header::AUTHORIZATION).iter();
    let authorization = authorizations.next();
    let mut api_keys = headers.get_all(API_KEY).iter();
    let api_key = api_keys.next();
    // Two credentials are ambiguous: intermediaries might each read a different one.
    if authorizations.next().is_some()
        || api_keys.next().is_some()
        || (authorization.is_some() && api_key.is_some())
    {
        return Err(Problem::unauthenticated("send exactly one credential"));
    }
    if let Some(value) = api_key {
        let secret = value.to_str().map_err(|_| malformed())?.trim();
        if secret.is_empty() {
            return Err(Problem::unauthenticated("empty API key"));
        }
        return Ok(Credential::ApiKey(secret));
    }
    let Some(value) = authorization else {
        return Ok(Credential::None);
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, rest) = text.split_once(' ').ok_or_else(malformed)?;
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(malformed());
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Credential::Bearer(value, rest))
    } else if scheme.eq_ignore_ascii_case("apikey") {
        Ok(Credential::ApiKey(rest))
    } else {
        Err(malformed())
    }
}

fn problem_from(error: &Error) -> Problem {
    let problem = Problem::from_error(error);
    if error.code() == ErrorCode::Authn {
        // RFC 6750: say it is the token that is wrong.
        let mut problem = problem;
        problem.headers.clear();
        return problem.with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    problem
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
