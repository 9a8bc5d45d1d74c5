//! The time the domain runs on. Production reads the system clock; tests hold a [`TestClock`] and
//! move it, so a month of billing periods or an expiring reservation is tested without sleeping.
//!
//! Domain code asks the clock it was built with (`ctx.clock.now()`) instead of `Utc::now()`, and
//! the job worker compares due times with the same clock, so moving a test clock makes jobs due.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The clock a service shares between its handlers, consumers and job worker.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The real clock, shared: what every service runs on outside tests.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still until a test moves it. Clones share one time.
#[derive(Debug, Clone)]
pub struct TestClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl TestClock {
    pub fn new(start: DateTime<Utc>) -> TestClock {
        TestClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Jump to `time` (backwards too: a test may replay a late event).
    pub fn set(&self, time: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = time;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }

    /// This clock as the service's clock; the test keeps its own handle to move it.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_only_when_told_and_its_clones_move_with_it() {
        let start = DateTime::parse_from_rfc3339("2028-02-28T23:59:00Z")
            .expect("valid time")
            .with_timezone(&Utc);
        let clock = TestClock::new(start);
        let shared = clock.shared();
        assert_eq!(shared.now(), start);
        clock.advance(chrono::Duration::minutes(2));
        assert_eq!(shared.now().to_rfc3339(), "2028-02-29T00:01:00+00:00");
        clock.set(start);
        assert_eq!(shared.now(), start);
    }
}
