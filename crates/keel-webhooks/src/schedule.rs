//! When to try again, and when to give up on an endpoint, as pure functions of the history.
//!
//! The schedule follows Svix's, which webhook consumers know: quick retries for a blip, then
//! hours apart for an outage, about three days in all. Each delay gets ±20% jitter so that an
//! endpoint coming back from an outage is not hit by every queued message in the same second.

use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;

/// The wait after each failed attempt: after the first failure 5 s, after the second 5 min, and
/// so on. After the last one the message is given up ("exhausted"). 12 attempts over ~2.8 days.
pub const RETRY_SCHEDULE: [Duration; 11] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * MINUTE),
    Duration::from_secs(30 * MINUTE),
    Duration::from_secs(2 * HOUR),
    Duration::from_secs(5 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
];

/// The share of a delay the jitter may add or remove.
pub const JITTER: f64 = 0.2;

/// How long to wait after the `failed_attempts`-th failed attempt (1 = the first one failed), or
/// `None` when the message has had all its attempts. `jitter` in `[-1, 1]` scales the ±20%
/// spread (pass a random number; values outside are clamped).
pub fn retry_delay(failed_attempts: u32, jitter: f64) -> Option<Duration> {
    let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
    let base = *RETRY_SCHEDULE.get(index)?;
    let factor = 1.0 + JITTER * jitter.clamp(-1.0, 1.0);
    Some(base.mul_f64(factor))
}

/// [`retry_delay`] with a random jitter.
pub fn retry_delay_jittered(failed_attempts: u32) -> Option<Duration> {
    retry_delay(failed_attempts, rand::random::<f64>() * 2.0 - 1.0)
}

/// The most attempts one message gets (the first plus one per schedule entry).
pub const MAX_ATTEMPTS: u32 = RETRY_SCHEDULE.len() as u32 + 1;

/// When an endpoint has failed long enough to be switched off. Both conditions must hold, so a
/// burst of failures in one bad minute does not disable a healthy endpoint, and neither does one
/// old failure: the endpoint must have failed `consecutive_failures` attempts in a row, with no
/// success, over at least `failing_for`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DisablePolicy {
    pub consecutive_failures: u32,
    pub failing_for: Duration,
}

impl Default for DisablePolicy {
    /// One message that exhausts its schedule (12 failures over ~2.8 days) disables the endpoint;
    /// so do 12 failed messages in a row over more than a day.
    fn default() -> Self {
        DisablePolicy {
            consecutive_failures: MAX_ATTEMPTS,
            failing_for: Duration::from_secs(24 * HOUR),
        }
    }
}

/// Whether an endpoint should be disabled, given its failures since the last success:
/// `consecutive_failures` attempts, the first of which happened `failing_for` ago.
pub fn should_disable(
    policy: &DisablePolicy,
    consecutive_failures: u32,
    failing_for: Duration,
) -> bool {
    consecutive_failures >= policy.consecutive_failures && failing_for >= policy.failing_for
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spans_about_three_days() {
        let total: Duration = RETRY_SCHEDULE.iter().sum();
        let hours = total.as_secs_f64() / 3600.0;
        assert!((60.0..=80.0).contains(&hours), "{hours} h");
        assert_eq!(retry_delay(1, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(2, 0.0), Some(Duration::from_secs(300)));
        assert_eq!(retry_delay(11, 0.0), Some(Duration::from_secs(36_000)));
        assert_eq!(
            retry_delay(12, 0.0),
            None,
            "exhausted after the 12th attempt"
        );
        assert_eq!(retry_delay(0, 0.0), None, "nothing failed yet");
        assert_eq!(MAX_ATTEMPTS, 12);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(retry_delay(2, 1.0), Some(Duration::from_secs(360)));
        assert_eq!(retry_delay(2, -1.0), Some(Duration::from_secs(240)));
        assert_eq!(
            retry_delay(2, 7.0),
            Some(Duration::from_secs(360)),
            "clamped"
        );
        for attempt in 1..MAX_ATTEMPTS {
            for _ in 0..50 {
                let base = RETRY_SCHEDULE[attempt as usize - 1].as_secs_f64();
                let delay = retry_delay_jittered(attempt).unwrap().as_secs_f64();
                assert!(delay >= base * 0.8 - 1e-6 && delay <= base * 1.2 + 1e-6);
            }
        }
    }

    #[test]
    fn disabling_needs_both_a_run_of_failures_and_time() {
        let policy = DisablePolicy::default();
        let day = Duration::from_secs(24 * HOUR);
        assert!(!should_disable(&policy, 11, day * 3));
        assert!(!should_disable(&policy, 500, Duration::from_secs(60)));
        assert!(should_disable(&policy, 12, day));
        let eager = DisablePolicy {
            consecutive_failures: 3,
            failing_for: Duration::ZERO,
        };
        assert!(!should_disable(&eager, 2, Duration::ZERO));
        assert!(should_disable(&eager, 3, Duration::ZERO));
    }
}
