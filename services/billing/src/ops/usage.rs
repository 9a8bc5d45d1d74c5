//! Recording usage, from events and from RecordUsage.

use keel_kernel::Error;
use keel_kernel::db::TenantTx;

use crate::domain::{NewUsage, UsageRecord};
use crate::repo;
use crate::settings::Settings;

/// Store a usage record unless its idempotency key was seen for the meter (then the first record
/// is returned). VALIDATION naming `field` when the meter is not in the catalogue (the meters
/// are the configured ones, seeded at start).
pub async fn record(
    tx: &mut TenantTx,
    settings: &Settings,
    usage: &NewUsage,
    field: &str,
) -> Result<UsageRecord, Error> {
    if !settings.meters.iter().any(|m| m.id == usage.meter_id) {
        return Err(Error::invalid(
            field,
            format!("`{}` is not a meter", usage.meter_id),
        ));
    }
    let (record, _created) = repo::usage::record(tx, usage).await?;
    Ok(record)
}
