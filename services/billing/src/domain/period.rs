//! Billing periods: calendar months or years anchored at the subscription's start. Period `n`
//! starts `n` intervals after the anchor; a day the month lacks is clamped to its last day, and
//! every period is computed from the anchor (never from the previous period), so a subscription
//! started on Jan 31 renews Feb 28 (Feb 29 in a leap year), Mar 31, Apr 30, May 31.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

use super::BillingInterval;

/// `anchor` plus `count` calendar months, clamped to the end of the month.
pub fn add_months(anchor: DateTime<Utc>, count: u32) -> DateTime<Utc> {
    // chrono's `checked_add_months` clamps to the last day of the month, as billing wants; it
    // only fails past year 262143.
    anchor
        .checked_add_months(Months::new(count))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The start of period `index` of a subscription anchored at `anchor`.
pub fn period_start(anchor: DateTime<Utc>, interval: BillingInterval, index: u32) -> DateTime<Utc> {
    add_months(anchor, index.saturating_mul(interval.months()))
}

/// The period of a subscription anchored at `anchor` that contains `at` (at or after the anchor):
/// its index, start and end.
pub fn period_containing(
    anchor: DateTime<Utc>,
    interval: BillingInterval,
    at: DateTime<Utc>,
) -> (u32, DateTime<Utc>, DateTime<Utc>) {
    // A first guess from the calendar, then corrected by at most a step either way.
    let months = (at.year() - anchor.year()) * 12 + at.month() as i32 - anchor.month() as i32;
    let mut index = u32::try_from(months.max(0)).unwrap_or(0) / interval.months();
    while index > 0 && period_start(anchor, interval, index) > at {
        index -= 1;
    }
    while period_start(anchor, interval, index + 1) <= at {
        index += 1;
    }
    (
        index,
        period_start(anchor, interval, index),
        period_start(anchor, interval, index + 1),
    )
}

/// Whether `year` has a Feb 29.
pub fn is_leap_year(year: i32) -> bool {
    NaiveDate::from_ymd_opt(year, 2, 29).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_month_end_anchor_is_clamped_and_returns_to_the_31st() {
        let anchor = at("2027-01-31T10:00:00Z");
        let starts: Vec<_> = (0..5)
            .map(|i| period_start(anchor, BillingInterval::Month, i))
            .collect();
        assert_eq!(
            starts,
            vec![
                at("2027-01-31T10:00:00Z"),
                at("2027-02-28T10:00:00Z"),
                at("2027-03-31T10:00:00Z"),
                at("2027-04-30T10:00:00Z"),
                at("2027-05-31T10:00:00Z"),
            ]
        );
        assert_eq!(
            period_start(at("2028-01-31T00:00:00Z"), BillingInterval::Month, 1),
            at("2028-02-29T00:00:00Z")
        );
    }

    #[test]
    fn a_feb_29_anchor_renews_yearly_on_feb_28_and_again_on_feb_29() {
        let anchor = at("2028-02-29T00:00:00Z");
        assert_eq!(
            period_start(anchor, BillingInterval::Year, 1),
            at("2029-02-28T00:00:00Z")
        );
        assert_eq!(
            period_start(anchor, BillingInterval::Year, 4),
            at("2032-02-29T00:00:00Z")
        );
        assert_eq!(
            period_start(anchor, BillingInterval::Month, 1),
            at("2028-03-29T00:00:00Z")
        );
    }

    #[test]
    fn the_period_containing_a_time_is_found_from_the_anchor() {
        let anchor = at("2027-01-31T10:00:00Z");
        let (index, start, end) =
            period_containing(anchor, BillingInterval::Month, at("2027-03-30T00:00:00Z"));
        assert_eq!(index, 1);
        assert_eq!(start, at("2027-02-28T10:00:00Z"));
        assert_eq!(end, at("2027-03-31T10:00:00Z"));
        let (index, _, _) = period_containing(anchor, BillingInterval::Month, anchor);
        assert_eq!(index, 0);
        assert!(is_leap_year(2028) && !is_leap_year(2027));
    }
}
