//! Brute-force protection as pure arithmetic over failure counters: the repository stores the
//! counters, this decides which ones an attempt touches and what they mean.
//!
//! The policy (also in `LockoutSettings`' documentation): every attempt is counted on three
//! counters *before* its password is checked, so parallel attempts cannot slip past a limit, and
//! a success gives its reservation back.
//! - (account, client IP): `account_threshold` failures lock that pair for `lock_secs`. The lock
//!   stops the guesser at their address without stopping the account's owner at theirs.
//! - the account, from every address: past `account_delay_threshold` failures each attempt waits
//!   an escalating delay (capped at `max_delay_ms`), never a lock: a botnet is slowed to one
//!   guess per delay per account, and nobody can lock another person out.
//! - the client IP, across accounts: `ip_threshold` failures lock the address (password spraying).

use chrono::{DateTime, Duration, Utc};

use crate::settings::LockoutSettings;

/// One counter an attempt is checked against, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    pub key: String,
    pub limits: Limits,
}

/// Failures past `free_attempts` are delayed; `lock_at` failures, if set, lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub free_attempts: u32,
    pub lock_at: Option<u32>,
}

impl Throttle {
    /// Whether a success clears this counter rather than just giving its attempt back: only the
    /// owner's own (account, address) history is forgiven by knowing the password.
    pub fn cleared_by_success(&self) -> bool {
        self.key.starts_with(ACCOUNT_AT_IP)
    }
}

const ACCOUNT_AT_IP: &str = "account-ip:";

/// The counters an attempt on `normalized_email` from `client_ip` is checked against, in the
/// order they are locked (the same everywhere, so concurrent attempts cannot deadlock).
pub fn throttles(
    policy: &LockoutSettings,
    normalized_email: &str,
    client_ip: &str,
) -> Vec<Throttle> {
    let mut throttles = vec![
        Throttle {
            key: format!("{ACCOUNT_AT_IP}{normalized_email}|{client_ip}"),
            limits: Limits {
                free_attempts: policy.free_attempts,
                lock_at: Some(policy.account_threshold),
            },
        },
        Throttle {
            key: format!("account:{normalized_email}"),
            limits: Limits {
                free_attempts: policy.account_delay_threshold,
                lock_at: None,
            },
        },
    ];
    if !client_ip.is_empty() {
        throttles.push(Throttle {
            key: format!("ip:{client_ip}"),
            limits: Limits {
                free_attempts: policy.free_attempts,
                lock_at: Some(policy.ip_threshold),
            },
        });
    }
    throttles
}

/// "try again in 1 second", "try again in 3 seconds": the wait rounded up to whole seconds.
pub fn try_again_in(wait: std::time::Duration) -> String {
    match whole_seconds(wait) {
        1 => "try again in 1 second".to_owned(),
        n => format!("try again in {n} seconds"),
    }
}

/// `wait` rounded up to whole seconds, at least one: what Retry-After carries.
pub fn whole_seconds(wait: std::time::Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// The stored state of one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub failures: u32,
    pub last_failure_at: DateTime<Utc>,
    /// Attempts before this are refused without checking the password (the escalating delay).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
}

/// Whether an attempt may go ahead now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Refused; the caller may retry after this long.
    Closed(std::time::Duration),
}

/// Whether `counter` lets an attempt through at `now`.
pub fn gate(counter: Option<&Counter>, now: DateTime<Utc>) -> Gate {
    let Some(counter) = counter else {
        return Gate::Open;
    };
    let until = [counter.locked_until, counter.next_attempt_at]
        .into_iter()
        .flatten()
        .filter(|until| *until > now)
        .max();
    match until {
        Some(until) => Gate::Closed((until - now).to_std().unwrap_or_default()),
        None => Gate::Open,
    }
}

/// The counter after one more failure at `now`, under `limits`.
pub fn after_failure(
    counter: Option<Counter>,
    now: DateTime<Utc>,
    policy: &LockoutSettings,
    limits: Limits,
) -> Counter {
    let window = Duration::seconds(policy.window_secs as i64);
    let fresh = Counter {
        failures: 0,
        last_failure_at: now,
        next_attempt_at: None,
        locked_until: None,
    };
    // A quiet window, or a lock that has run out, starts the count again.
    let mut counter = match counter {
        Some(c) if c.locked_until.is_some_and(|until| until <= now) => fresh,
        Some(c) if now - c.last_failure_at > window => fresh,
        Some(c) => c,
        None => fresh,
    };
    counter.failures = counter.failures.saturating_add(1);
    counter.last_failure_at = now;
    if limits
        .lock_at
        .is_some_and(|lock_at| counter.failures >= lock_at)
    {
        counter.locked_until = Some(now + Duration::seconds(policy.lock_secs as i64));
        counter.next_attempt_at = None;
    } else if counter.failures > limits.free_attempts {
        counter.next_attempt_at =
            Some(now + delay(counter.failures - limits.free_attempts, policy));
    }
    counter
}

/// The counter after a reserved attempt turned out not to be a failure: its count goes back,
/// and a lock or delay that count no longer justifies goes with it. A delay that others' failures
/// still justify stays.
pub fn after_refund(mut counter: Counter, limits: Limits) -> Counter {
    counter.failures = counter.failures.saturating_sub(1);
    if limits
        .lock_at
        .is_none_or(|lock_at| counter.failures < lock_at)
    {
        counter.locked_until = None;
    }
    if counter.failures <= limits.free_attempts {
        counter.next_attempt_at = None;
    }
    counter
}

/// The delay after the `n`th delayed failure: base, 2 x base, 4 x base, ... up to the maximum.
fn delay(n: u32, policy: &LockoutSettings) -> Duration {
    let factor = 1u64 << (n.saturating_sub(1)).min(20);
    let ms = policy
        .base_delay_ms
        .saturating_mul(factor)
        .min(policy.max_delay_ms);
    Duration::milliseconds(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutSettings {
        LockoutSettings {
            window_secs: 600,
            free_attempts: 2,
            base_delay_ms: 100,
            max_delay_ms: 300,
            account_threshold: 6,
            account_delay_threshold: 50,
            ip_threshold: 20,
            lock_secs: 60,
        }
    }

    const LOCK_AT_6: Limits = Limits {
        free_attempts: 2,
        lock_at: Some(6),
    };

    #[test]
    fn delays_escalate_then_the_account_locks() {
        let now = Utc::now();
        let mut counter = None;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let next = after_failure(counter, now, &policy(), LOCK_AT_6);
            waits.push(match gate(Some(&next), now) {
                Gate::Open => 0,
                Gate::Closed(wait) => wait.as_millis(),
            });
            counter = Some(next);
        }
        assert_eq!(waits, vec![0, 0, 100, 200, 300, 60_000]);
    }

    #[test]
    fn a_lock_that_ran_out_starts_a_new_count() {
        let start = Utc::now();
        let mut counter = None;
        for _ in 0..6 {
            counter = Some(after_failure(counter, start, &policy(), LOCK_AT_6));
        }
        let later = start + Duration::seconds(61);
        assert_eq!(gate(counter.as_ref(), later), Gate::Open);
        let next = after_failure(counter, later, &policy(), LOCK_AT_6);
        assert_eq!(next.failures, 1);
        assert_eq!(gate(Some(&next), later), Gate::Open);
    }

    #[test]
    fn a_delay_only_counter_never_locks() {
        let now = Utc::now();
        let limits = Limits {
            free_attempts: 2,
            lock_at: None,
        };
        let mut counter = None;
        for _ in 0..1_000 {
            counter = Some(after_failure(counter, now, &policy(), limits));
        }
        let counter = counter.expect("counted");
        assert_eq!(counter.locked_until, None);
        assert_eq!(
            gate(Some(&counter), now),
            Gate::Closed(std::time::Duration::from_millis(300))
        );
    }

    #[test]
    fn a_refund_lifts_only_what_its_attempt_caused() {
        let now = Utc::now();
        let mut counter = None;
        for _ in 0..6 {
            counter = Some(after_failure(counter, now, &policy(), LOCK_AT_6));
        }
        let locked = counter.expect("counted");
        let refunded = after_refund(locked, LOCK_AT_6);
        assert_eq!(refunded.failures, 5);
        assert_eq!(refunded.locked_until, None);

        let one = after_failure(None, now, &policy(), LOCK_AT_6);
        let delayed = after_failure(Some(one), now, &policy(), LOCK_AT_6);
        let delayed = after_failure(Some(delayed), now, &policy(), LOCK_AT_6);
        assert!(delayed.next_attempt_at.is_some());
        assert_eq!(
            gate(Some(&after_refund(delayed, LOCK_AT_6)), now),
            Gate::Open
        );
    }

    #[test]
    fn waits_are_worded_in_whole_seconds_with_the_right_plural() {
        use std::time::Duration as Wait;
        assert_eq!(
            try_again_in(Wait::from_millis(300)),
            "try again in 1 second"
        );
        assert_eq!(try_again_in(Wait::from_secs(1)), "try again in 1 second");
        assert_eq!(
            try_again_in(Wait::from_millis(1_001)),
            "try again in 2 seconds"
        );
        assert_eq!(
            try_again_in(Wait::from_secs(900)),
            "try again in 900 seconds"
        );
    }

    #[test]
    fn the_owner_at_another_address_is_counted_apart_from_the_guesser() {
        let settings = LockoutSettings::default();
        let guesser = throttles(&settings, "a@example.com", "203.0.113.7");
        let owner = throttles(&settings, "a@example.com", "198.51.100.1");
        assert_ne!(guesser[0], owner[0]);
        assert_eq!(guesser[1], owner[1]);
        assert_eq!(guesser[1].limits.lock_at, None);
        assert!(guesser[0].cleared_by_success() && !guesser[1].cleared_by_success());
    }
}
