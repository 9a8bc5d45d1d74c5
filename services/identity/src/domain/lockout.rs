//! Brute-force protection as pure arithmetic over a failure counter: the repository stores the
//! counters (one per account, one per client IP), this decides what they mean.

use chrono::{DateTime, Duration, Utc};

use crate::settings::LockoutSettings;

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

/// The counter after one more failure at `now`; `threshold` failures lock for `lock_secs`.
pub fn after_failure(
    counter: Option<Counter>,
    now: DateTime<Utc>,
    policy: &LockoutSettings,
    threshold: u32,
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
    counter.failures += 1;
    counter.last_failure_at = now;
    if counter.failures >= threshold {
        counter.locked_until = Some(now + Duration::seconds(policy.lock_secs as i64));
        counter.next_attempt_at = None;
    } else if counter.failures > policy.free_attempts {
        counter.next_attempt_at =
            Some(now + delay(counter.failures - policy.free_attempts, policy));
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
            ip_threshold: 20,
            lock_secs: 60,
        }
    }

    #[test]
    fn delays_escalate_then_the_account_locks() {
        let now = Utc::now();
        let mut counter = None;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let next = after_failure(counter, now, &policy(), 6);
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
            counter = Some(after_failure(counter, start, &policy(), 6));
        }
        let later = start + Duration::seconds(61);
        assert_eq!(gate(counter.as_ref(), later), Gate::Open);
        let next = after_failure(counter, later, &policy(), 6);
        assert_eq!(next.failures, 1);
        assert_eq!(gate(Some(&next), later), Gate::Open);
    }
}
