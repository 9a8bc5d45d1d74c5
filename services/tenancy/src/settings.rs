//! Tenancy's own settings: the `app` section of `config/tenancy.yaml`.

use std::collections::BTreeMap;

use keel_kernel::config::{ConfigError, Validate};
use serde::Deserialize;

use crate::domain::FlagName;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Approve new tenants at once instead of waiting for a platform admin (local runs).
    pub auto_approve: bool,
    /// How long an invitation can be accepted.
    pub invitation_ttl_hours: u64,
    /// The plan a new tenant starts on, until billing assigns another.
    pub default_plan: String,
    /// Every feature flag's platform default; a tenant's override replaces it.
    pub flag_defaults: BTreeMap<String, bool>,
}

const MAX_INVITATION_TTL_HOURS: u64 = 365 * 24;

impl Settings {
    pub fn invitation_ttl(&self) -> chrono::Duration {
        // Validated to at most a year, so it fits.
        chrono::Duration::hours(self.invitation_ttl_hours.min(MAX_INVITATION_TTL_HOURS) as i64)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            auto_approve: false,
            invitation_ttl_hours: 7 * 24,
            default_plan: "free".into(),
            flag_defaults: BTreeMap::new(),
        }
    }
}

impl Validate for Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_INVITATION_TTL_HOURS).contains(&self.invitation_ttl_hours) {
            return Err(ConfigError::invalid(
                "app.invitation_ttl_hours",
                format!("must be between 1 and {MAX_INVITATION_TTL_HOURS} (a year)"),
            ));
        }
        if self.default_plan.trim().is_empty() {
            return Err(ConfigError::invalid(
                "app.default_plan",
                "must not be empty",
            ));
        }
        for name in self.flag_defaults.keys() {
            FlagName::parse("flag", name).map_err(|err| {
                ConfigError::invalid(
                    format!("app.flag_defaults.{name}"),
                    err.message().to_owned(),
                )
            })?;
        }
        Ok(())
    }
}
