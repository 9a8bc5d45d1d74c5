//! Authentication at the edge: a bearer JWT verified with the kernel's [`JwtVerifier`] (identity's
//! JWKS, cached, refetched on an unknown `kid` at most once per interval), or an API key
//! (`X-Api-Key: <secret>` or `Authorization: ApiKey <secret>`) exchanged through identity's
//! `ExchangeApiKey` for a short-lived token, cached briefly.
//!
//! Verified tokens are cached by their exact text until they expire (at most a minute), so a
//! client's stream of requests costs one signature check, not one each. Exchanged API keys are
//! cached in a bounded least-recently-used map, so a flood of refused keys pushes out other
//! refused keys and never the valid keys in use. Revocations identity announces
//! ([`crate::revocation`]) are checked on every request, cached or not.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
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
use crate::revocation::Revocations;
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
    revocations: Arc<Revocations>,
}

struct ApiKeys {
    client: AuthServiceClient<Channel>,
    timeout: Duration,
    cache_for: Duration,
    /// By the SHA-256 of the secret (the secret itself is never kept).
    cache: Mutex<Lru<[u8; 32], CachedKey>>,
}

/// A map of at most `capacity` entries that evicts the least recently used one to make room.
pub struct Lru<K, V> {
    capacity: usize,
    /// Each entry with the tick it was last used at.
    entries: HashMap<K, (V, u64)>,
    /// The same entries by tick, oldest first.
    by_use: BTreeMap<u64, K>,
    tick: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    pub fn new(capacity: usize) -> Lru<K, V> {
        Lru {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
        }
    }

    /// The entry, marked as just used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.tick += 1;
        let (_, used) = self.entries.get_mut(key)?;
        self.by_use.remove(used);
        *used = self.tick;
        self.by_use.insert(self.tick, key.clone());
        self.entries.get(key).map(|(value, _)| value)
    }

    pub fn insert(&mut self, key: K, value: V) {
        self.tick += 1;
        if let Some((_, used)) = self.entries.remove(&key) {
            self.by_use.remove(&used);
        } else if self.entries.len() >= self.capacity
            && let Some((_, oldest)) = self.by_use.pop_first()
        {
            self.entries.remove(&oldest);
        }
        self.entries.insert(key.clone(), (value, self.tick));
        self.by_use.insert(self.tick, key);
    }

    /// Drop every entry `doomed` picks.
    pub fn remove_where(&mut self, mut doomed: impl FnMut(&V) -> bool) {
        let by_use = &mut self.by_use;
        self.entries.retain(|_, (value, used)| {
            let keep = !doomed(value);
            if !keep {
                by_use.remove(used);
            }
            keep
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Clone)]
enum CachedKey {
    Valid(Instant, Principal),
    Refused(Instant, Problem),
}

impl Authenticator {
    /// `exchange`: the upstream serving identity's `ExchangeApiKey`, and how long to cache.
    pub fn new(
        verifier: JwtVerifier,
        exchange: Option<(&Upstream, Duration)>,
        revocations: Arc<Revocations>,
    ) -> Authenticator {
        Authenticator {
            verifier,
            tokens: RwLock::new(HashMap::new()),
            api_keys: exchange.map(|(upstream, cache_for)| ApiKeys {
                client: AuthServiceClient::new(upstream.channel.clone()),
                timeout: upstream.timeout,
                cache_for,
                cache: Mutex::new(Lru::new(KEY_CACHE_MAX)),
            }),
            revocations,
        }
    }

    /// Drop the cached exchange of the API key `key_id` (identity revoked it).
    pub fn forget_api_key(&self, key_id: &str) {
        if let Some(keys) = &self.api_keys {
            keys.cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove_where(|entry| match entry {
                    CachedKey::Valid(_, principal) => principal.api_key.as_deref() == Some(key_id),
                    CachedKey::Refused(..) => false,
                });
        }
    }

    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// The caller, `None` when the request carries no credential, or the problem to answer
    /// with. Whether a route may be called without one is the caller's business (public routes
    /// ignore a bad credential: a caller whose token expired must still be able to log in).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        request_id: &HeaderValue,
    ) -> Result<Option<Principal>, Problem> {
        let principal = match credential(headers)? {
            Credential::None => return Ok(None),
            Credential::Bearer(header, token) => self.bearer(header, token).await?,
            Credential::ApiKey(secret) => self.api_key(secret, request_id).await?,
        };
        self.check_not_revoked(&principal)?;
        Ok(Some(principal))
    }

    /// Refuse a principal whose session or API key identity has revoked since its token was
    /// minted (the token itself stays valid until it expires).
    fn check_not_revoked(&self, principal: &Principal) -> Result<(), Problem> {
        if let Some(session) = &principal.claims.sid
            && self.revocations.is_session_revoked(session)
        {
            return Err(Problem::unauthenticated(
                "this session was revoked; log in again",
            ));
        }
        if let Some(key) = &principal.api_key
            && self.revocations.is_api_key_revoked(key)
        {
            return Err(Problem::unauthenticated("this API key was revoked"));
        }
        Ok(())
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
            .lock()
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
            keys.cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(digest, entry);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refused_keys_does_not_evict_the_valid_keys_in_use() {
        let mut cache: Lru<u32, &str> = Lru::new(100);
        cache.insert(0, "valid");
        for refused in 1..10_000 {
            cache.insert(refused, "refused");
            // The valid key is used now and then, as a client calling steadily does.
            if refused % 50 == 0 {
                assert_eq!(
                    cache.get(&0),
                    Some(&"valid"),
                    "after {refused} refused keys"
                );
            }
        }
        assert_eq!(cache.get(&0), Some(&"valid"));
        assert_eq!(cache.len(), 100, "bounded");
        assert!(
            cache.get(&1).is_none(),
            "the oldest refused keys went first"
        );
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted_first() {
        let mut cache: Lru<u32, u32> = Lru::new(2);
        cache.insert(1, 1);
        cache.insert(2, 2);
        cache.get(&1);
        cache.insert(3, 3);
        assert!(cache.get(&2).is_none());
        assert_eq!(cache.get(&1), Some(&1));
        assert_eq!(cache.get(&3), Some(&3));
        cache.remove_where(|v| *v == 1);
        assert!(cache.get(&1).is_none());
        cache.insert(4, 4);
        assert_eq!(cache.len(), 2);
    }
}
