//! Usage records: measured quantities per (tenant, meter), unique per idempotency key.

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId};

use super::UsageRecordId;

/// A usage record to store. The idempotency key is unique per (tenant, meter) against every
/// stored record: a duplicate returns the first record and adds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUsage {
    pub meter_id: String,
    pub quantity: i64,
    pub occur_time: DateTime<Utc>,
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub id: UsageRecordId,
    pub tenant_id: TenantId,
    pub meter_id: String,
    pub quantity: i64,
    pub occur_time: DateTime<Utc>,
    pub idempotency_key: String,
}

/// An idempotency key: 1 to 255 printable ASCII characters.
pub fn parse_idempotency_key(field: &str, value: &str) -> Result<String, Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if value.len() > 255 || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            "must be 1 to 255 printable ASCII characters without spaces",
        ));
    }
    Ok(value.to_owned())
}

/// A quantity: zero or more.
pub fn parse_quantity(field: &str, value: i64) -> Result<i64, Error> {
    if value < 0 {
        return Err(Error::invalid(field, "must not be negative"));
    }
    Ok(value)
}

/// One meter's aggregate over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSummary {
    pub meter_id: String,
    pub quantity: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}
