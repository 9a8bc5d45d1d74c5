//! Delivery's own settings: the `app` section of `config/delivery.yaml`.

use keel_kernel::config::{ConfigError, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// How long a deleted project's data is kept before the purge job erases it.
    pub retention_days: u32,
}

const MAX_RETENTION_DAYS: u32 = 3650;

impl Settings {
    pub fn retention(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.retention_days.min(MAX_RETENTION_DAYS)))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings { retention_days: 30 }
    }
}

impl Validate for Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_RETENTION_DAYS).contains(&self.retention_days) {
            return Err(ConfigError::invalid(
                "app.retention_days",
                format!("must be between 1 and {MAX_RETENTION_DAYS}"),
            ));
        }
        Ok(())
    }
}
