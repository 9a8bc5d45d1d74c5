//! Rate limiting with GCRA (the generic cell rate algorithm): per key, one number, the
//! theoretical arrival time (TAT) of the next request. A request is allowed when admitting it
//! keeps the TAT within `burst` emission intervals of now. Smooth, exact, and O(1) memory per key.
//!
//! Keys live in sharded maps; entries whose TAT has passed carry no information and are swept
//! when a shard grows.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use keel_kernel::TenantId;

use crate::auth::Principal;
use crate::config::{RateLimits, RateSpec};
use crate::router::Route;

const SHARDS: usize = 16;
/// A shard this large is swept of idle keys before it grows further.
const SWEEP_AT: usize = 8_192;

/// The gateway's rate limits: which policy and bucket a request falls in, and the buckets.
pub struct RateLimiting {
    limiter: Limiter,
    limits: RateLimits,
}

/// Who a request is counted against: the most specific identity it proved.
enum Subject<'a> {
    Ip(IpAddr),
    ApiKey(&'a str),
    Tenant(TenantId),
    User(&'a str),
}

impl<'a> Subject<'a> {
    /// Public routes (login, register, refresh) are always counted per address: counting them
    /// per token would give an attacker a fresh bucket for every account they hold.
    fn of(public: bool, principal: Option<&'a Principal>, client: IpAddr) -> Subject<'a> {
        match principal {
            _ if public => Subject::Ip(client),
            None => Subject::Ip(client),
            Some(p) => match (&p.api_key, p.claims.tid) {
                (Some(key), _) => Subject::ApiKey(key),
                (None, Some(tenant)) => Subject::Tenant(tenant),
                (None, None) => Subject::User(&p.claims.sub),
            },
        }
    }
}

impl RateLimiting {
    pub fn new(limits: RateLimits) -> RateLimiting {
        RateLimiting {
            limiter: Limiter::new(),
            limits,
        }
    }

    /// Count the request; the policy and decision, if any policy applies. The route's own policy
    /// wins; else the default for the kind of caller.
    pub fn check<'a>(
        &'a self,
        route: &'a Route,
        principal: Option<&Principal>,
        client: IpAddr,
    ) -> Option<(&'a str, Decision)> {
        let subject = Subject::of(route.public, principal, client);
        let (policy, spec): (&str, &RateSpec) = match &route.rate_limit {
            Some((name, spec)) => (name, spec),
            None => match subject {
                Subject::Ip(_) => ("public", self.limits.public.as_ref()?),
                Subject::ApiKey(_) => ("api_key", self.limits.api_key.as_ref()?),
                Subject::Tenant(_) => ("tenant", self.limits.tenant.as_ref()?),
                Subject::User(_) => ("user", self.limits.user.as_ref()?),
            },
        };
        let key = match subject {
            Subject::Ip(ip) => format!("{policy}|ip|{ip}"),
            Subject::ApiKey(key) => format!("{policy}|key|{key}"),
            Subject::Tenant(tenant) => format!("{policy}|tenant|{tenant}"),
            Subject::User(user) => format!("{policy}|user|{user}"),
        };
        Some((policy, self.limiter.check(&key, spec)))
    }
}

impl RateLimiting {
    /// The refusal to answer when `client` has spent its failed-authentication budget; counts
    /// nothing, so successful requests never use the budget up.
    pub fn failed_auth_refusal(&self, client: IpAddr) -> Option<Decision> {
        let decision = self
            .limiter
            .peek(&failed_auth_key(client), &self.limits.failed_auth);
        (!decision.allowed).then_some(decision)
    }

    /// Count one failed authentication from `client`.
    pub fn record_failed_auth(&self, client: IpAddr) {
        self.limiter
            .check(&failed_auth_key(client), &self.limits.failed_auth);
    }
}

fn failed_auth_key(client: IpAddr) -> String {
    format!("failed_auth|ip|{client}")
}

/// The `RateLimit-*` headers of a response counted against a policy.
pub fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert(
        "ratelimit-reset",
        HeaderValue::from(ceil_secs(decision.reset)),
    );
}

pub struct Limiter {
    start: Instant,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<String, u64>>>,
}

/// The outcome of one check, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The burst size.
    pub limit: u32,
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// When refused: until one request would be allowed.
    pub retry_after: Duration,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new()
    }
}

impl Limiter {
    pub fn new() -> Limiter {
        Limiter {
            start: Instant::now(),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Count one request against `key` under `spec`.
    pub fn check(&self, key: &str, spec: &RateSpec) -> Decision {
        self.check_at(key, spec, self.now())
    }

    /// What [`Limiter::check`] would decide, without counting the request.
    pub fn peek(&self, key: &str, spec: &RateSpec) -> Decision {
        self.decide(key, spec, self.now(), false)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn check_at(&self, key: &str, spec: &RateSpec, now: u64) -> Decision {
        self.decide(key, spec, now, true)
    }

    fn decide(&self, key: &str, spec: &RateSpec, now: u64, count: bool) -> Decision {
        let interval =
            (u64::from(spec.per_secs.get()) * 1_000_000_000) / u64::from(spec.rate.get());
        let interval = interval.max(1);
        let burst = u64::from(spec.burst.get());
        let capacity = interval.saturating_mul(burst);
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        // A panic while holding the lock leaves only whole numbers behind: safe to keep using.
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        if new_tat - now > capacity {
            let retry_after = new_tat - now - capacity;
            return Decision {
                allowed: false,
                limit: spec.burst.get(),
                remaining: 0,
                reset: Duration::from_nanos(tat - now),
                retry_after: Duration::from_nanos(retry_after),
            };
        }
        if !count {
            return Decision {
                allowed: true,
                limit: spec.burst.get(),
                remaining: u32::try_from((capacity - (tat - now)) / interval).unwrap_or(u32::MAX),
                reset: Duration::from_nanos(tat - now),
                retry_after: Duration::ZERO,
            };
        }
        if map.len() >= SWEEP_AT && !map.contains_key(key) {
            map.retain(|_, tat| *tat > now);
        }
        map.insert(key.to_owned(), new_tat);
        let remaining = (capacity - (new_tat - now)) / interval;
        Decision {
            allowed: true,
            limit: spec.burst.get(),
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: Duration::from_nanos(new_tat - now),
            retry_after: Duration::ZERO,
        }
    }
}

/// Whole seconds, rounded up: what `Retry-After` and `RateLimit-Reset` carry.
pub fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn spec(rate: u32, per_secs: u32, burst: u32) -> RateSpec {
        let n = |v: u32| NonZeroU32::new(v).expect("positive");
        RateSpec {
            rate: n(rate),
            per_secs: n(per_secs),
            burst: n(burst),
        }
    }

    #[test]
    fn a_burst_is_allowed_then_refused_until_one_interval_passes() {
        let limiter = Limiter::new();
        let policy = spec(1, 1, 3);
        let at = |n: u64| n * 1_000_000;
        for expected_remaining in [2, 1, 0] {
            let decision = limiter.check_at("k", &policy, at(0));
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
        }
        let refused = limiter.check_at("k", &policy, at(0));
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert!(!limiter.check_at("k", &policy, at(999)).allowed);
        assert!(limiter.check_at("k", &policy, at(1_000)).allowed);
    }

    #[test]
    fn keys_are_independent() {
        let limiter = Limiter::new();
        let policy = spec(1, 60, 1);
        assert!(limiter.check_at("a", &policy, 0).allowed);
        assert!(!limiter.check_at("a", &policy, 0).allowed);
        assert!(limiter.check_at("b", &policy, 0).allowed);
    }

    #[test]
    fn peeking_counts_nothing() {
        let limiter = Limiter::new();
        let policy = spec(1, 60, 1);
        for _ in 0..3 {
            assert!(limiter.decide("k", &policy, 0, false).allowed);
        }
        assert!(limiter.check_at("k", &policy, 0).allowed);
        assert!(!limiter.decide("k", &policy, 0, false).allowed);
    }

    #[test]
    fn a_steady_rate_at_the_limit_is_always_allowed() {
        let limiter = Limiter::new();
        let policy = spec(10, 1, 1);
        for i in 0..100u64 {
            assert!(
                limiter.check_at("k", &policy, i * 100_000_000).allowed,
                "request {i}"
            );
        }
    }
}
