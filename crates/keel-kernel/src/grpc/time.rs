//! `google.protobuf.Timestamp` <-> `chrono`, the one place the conversion is written.

use chrono::{DateTime, Utc};

use crate::error::Error;

/// A time as a protobuf Timestamp (ProtoJSON renders it as RFC 3339).
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        // Sub-second nanos are below 2e9 (1e9 plus a leap second), so they fit in i32.
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(i32::MAX),
    }
}

/// A request's Timestamp field as a time; VALIDATION naming `field` when out of range.
pub fn from_timestamp(field: &str, ts: &prost_types::Timestamp) -> Result<DateTime<Utc>, Error> {
    let nanos =
        u32::try_from(ts.nanos).map_err(|_| Error::invalid(field, "nanos must not be negative"))?;
    DateTime::from_timestamp(ts.seconds, nanos)
        .ok_or_else(|| Error::invalid(field, "is not a valid time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_round_trips_to_the_microsecond() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid time");
        assert_eq!(from_timestamp("at", &timestamp(at)).ok(), Some(at));
    }

    #[test]
    fn an_impossible_time_names_its_field() {
        let bad = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        let err = from_timestamp("expire_time", &bad).expect_err("out of range");
        assert_eq!(err.violations()[0].field, "expire_time");
    }
}
