//! A circuit breaker per deployment: `failure_threshold` consecutive failures open it for
//! `cooldown`; then one call is let through as a probe (half-open): its success closes the
//! circuit, its failure opens it again. Time comes from the caller (the service clock), so tests
//! move time instead of sleeping.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    open_until: Option<DateTime<Utc>>,
    probing: bool,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

/// What the breaker lets a call do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Call,
    /// Half-open: this call is the probe.
    Probe,
    /// Open: skip this deployment.
    Refused,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn admit(&self, now: DateTime<Utc>) -> Admission {
        let mut state = self.state();
        match state.open_until {
            None => Admission::Call,
            Some(until) if now < until => Admission::Refused,
            Some(_) if state.probing => Admission::Refused,
            Some(_) => {
                state.probing = true;
                Admission::Probe
            }
        }
    }

    pub fn succeeded(&self) {
        let mut state = self.state();
        *state = State::default();
    }

    pub fn failed(&self, now: DateTime<Utc>) {
        let mut state = self.state();
        if state.probing {
            state.probing = false;
            state.open_until = Some(now + self.cooldown);
            return;
        }
        state.consecutive_failures += 1;
        if state.consecutive_failures >= self.threshold {
            state.open_until = Some(now + self.cooldown);
        }
    }

    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        matches!(self.state().open_until, Some(until) if now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_then_probes_once_after_the_cooldown() {
        let start = Utc::now();
        let breaker = Breaker::new(2, Duration::seconds(30));
        breaker.failed(start);
        assert_eq!(breaker.admit(start), Admission::Call);
        breaker.failed(start);
        assert_eq!(breaker.admit(start), Admission::Refused);
        let later = start + Duration::seconds(31);
        assert_eq!(breaker.admit(later), Admission::Probe);
        assert_eq!(
            breaker.admit(later),
            Admission::Refused,
            "one probe at a time"
        );
        breaker.failed(later);
        assert_eq!(
            breaker.admit(later),
            Admission::Refused,
            "a failed probe reopens"
        );
        let much_later = later + Duration::seconds(31);
        assert_eq!(breaker.admit(much_later), Admission::Probe);
        breaker.succeeded();
        assert_eq!(breaker.admit(much_later), Admission::Call);
    }
}
