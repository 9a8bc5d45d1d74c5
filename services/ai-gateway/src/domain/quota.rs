//! Quota periods, remaining tokens and prices: the arithmetic of metering, without the database.

use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use keel_kernel::TenantId;

/// A billing period `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    /// The calendar month (UTC) containing `now`: the period of a tenant billing has not told us
    /// about.
    pub fn month_of(now: DateTime<Utc>) -> Period {
        let start = Utc
            .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
            .single()
            .unwrap_or(now);
        let end = start.checked_add_months(Months::new(1)).unwrap_or(start);
        Period { start, end }
    }

    /// The period containing `now`, continuing this one month by month once it has ended (a
    /// plan renews; billing's next entitlements event will confirm or correct it).
    pub fn current_at(self, now: DateTime<Utc>) -> Period {
        let mut period = self;
        // Bounded: a tenant idle for years still ends in a few hundred steps.
        for _ in 0..1200 {
            if now < period.end {
                return period;
            }
            let end = period
                .end
                .checked_add_months(Months::new(1))
                .unwrap_or(period.end);
            if end <= period.end {
                break;
            }
            period = Period {
                start: period.end,
                end,
            };
        }
        Period::month_of(now)
    }
}

/// A tenant's quota in its current period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub tenant: TenantId,
    pub period: Period,
    /// -1: unlimited.
    pub limit_tokens: i64,
    pub used_tokens: i64,
    pub reserved_tokens: i64,
}

impl Quota {
    /// Tokens left, never below 0; -1 when unlimited.
    pub fn remaining(&self) -> i64 {
        if self.limit_tokens < 0 {
            return -1;
        }
        (self.limit_tokens - self.used_tokens - self.reserved_tokens).max(0)
    }
}

/// A deployment's prices, in micros of the currency per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prices {
    pub input_micros_per_million: i64,
    pub output_micros_per_million: i64,
}

impl Prices {
    /// Cost of a call in micros, rounded half up, in integers (no float drift).
    pub fn cost_micros(&self, prompt_tokens: i64, completion_tokens: i64) -> i64 {
        let total = i128::from(prompt_tokens) * i128::from(self.input_micros_per_million)
            + i128::from(completion_tokens) * i128::from(self.output_micros_per_million);
        let micros = (total + 500_000) / 1_000_000;
        i64::try_from(micros).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a time")
    }

    #[test]
    fn a_period_continues_month_by_month() {
        let period = Period {
            start: at("2026-01-15T00:00:00Z"),
            end: at("2026-02-15T00:00:00Z"),
        };
        assert_eq!(period.current_at(at("2026-02-01T00:00:00Z")), period);
        let next = period.current_at(at("2026-03-20T00:00:00Z"));
        assert_eq!(next.start, at("2026-03-15T00:00:00Z"));
        assert_eq!(next.end, at("2026-04-15T00:00:00Z"));
    }

    #[test]
    fn costs_are_integer_micros_rounded_half_up() {
        // $2.50 / $10.00 per million tokens.
        let prices = Prices {
            input_micros_per_million: 2_500_000,
            output_micros_per_million: 10_000_000,
        };
        assert_eq!(prices.cost_micros(1_000, 500), 2_500 + 5_000);
        assert_eq!(prices.cost_micros(1, 0), 3); // 2.5 micros rounds up
        assert_eq!(prices.cost_micros(0, 0), 0);
    }
}
