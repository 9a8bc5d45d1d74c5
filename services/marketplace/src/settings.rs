//! Marketplace's own settings: the `app` section of `config/marketplace.yaml`.

use std::collections::BTreeMap;

use keel_kernel::config::{ConfigError, Validate};
use serde::Deserialize;

use crate::domain::{Commission, Currency};

/// One plan's commission: basis points of the order total plus a fixed amount per currency.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommissionRule {
    pub basis_points: u32,
    /// Minor units of each currency; a currency not listed has no fixed part.
    pub fixed_minor_units: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The plan of tenants billing has not announced a plan for.
    pub default_plan: String,
    /// Commission per plan name.
    pub commission: BTreeMap<String, CommissionRule>,
    /// Lifetime of an offer that names no `expire_time`.
    pub offer_ttl_hours: u64,
    /// The longest lifetime an offer may ask for.
    pub max_offer_ttl_hours: u64,
    /// How long after fulfilment either party may open a dispute.
    pub dispute_window_hours: u64,
    /// How long an OPEN dispute waits for a resolution before it is escalated.
    pub dispute_escalation_hours: u64,
    /// How long CreateOrder's idempotency keys are kept (at least 24 h).
    pub idempotency_retention_hours: u64,
}

const MAX_HOURS: u64 = 10 * 365 * 24;
const MIN_RETENTION_HOURS: u64 = 24;

fn hours(value: u64) -> chrono::Duration {
    // Validated to at most ten years, so it fits.
    chrono::Duration::hours(value.min(MAX_HOURS) as i64)
}

impl Settings {
    pub fn offer_ttl(&self) -> chrono::Duration {
        hours(self.offer_ttl_hours)
    }
    pub fn max_offer_ttl(&self) -> chrono::Duration {
        hours(self.max_offer_ttl_hours)
    }
    pub fn dispute_window(&self) -> chrono::Duration {
        hours(self.dispute_window_hours)
    }
    pub fn dispute_escalation(&self) -> chrono::Duration {
        hours(self.dispute_escalation_hours)
    }
    pub fn idempotency_retention(&self) -> chrono::Duration {
        hours(self.idempotency_retention_hours)
    }

    /// The commission on orders in `currency` under `plan` (the default plan when None; no
    /// commission when the plan has no rule).
    pub fn commission(&self, plan: Option<&str>, currency: &str) -> Commission {
        self.commission
            .get(plan.unwrap_or(&self.default_plan))
            .map(|rule| Commission {
                basis_points: rule.basis_points,
                fixed: rule
                    .fixed_minor_units
                    .get(currency)
                    .copied()
                    .unwrap_or_default(),
            })
            .unwrap_or(Commission {
                basis_points: 0,
                fixed: 0,
            })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_plan: "free".into(),
            commission: BTreeMap::new(),
            offer_ttl_hours: 7 * 24,
            max_offer_ttl_hours: 30 * 24,
            dispute_window_hours: 14 * 24,
            dispute_escalation_hours: 3 * 24,
            idempotency_retention_hours: 48,
        }
    }
}

impl Validate for Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("app.offer_ttl_hours", self.offer_ttl_hours),
            ("app.max_offer_ttl_hours", self.max_offer_ttl_hours),
            ("app.dispute_window_hours", self.dispute_window_hours),
            (
                "app.dispute_escalation_hours",
                self.dispute_escalation_hours,
            ),
            (
                "app.idempotency_retention_hours",
                self.idempotency_retention_hours,
            ),
        ] {
            if !(1..=MAX_HOURS).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be between 1 and {MAX_HOURS} (ten years)"),
                ));
            }
        }
        if self.offer_ttl_hours > self.max_offer_ttl_hours {
            return Err(ConfigError::invalid(
                "app.offer_ttl_hours",
                "must not exceed app.max_offer_ttl_hours",
            ));
        }
        if self.idempotency_retention_hours < MIN_RETENTION_HOURS {
            return Err(ConfigError::invalid(
                "app.idempotency_retention_hours",
                format!("must be at least {MIN_RETENTION_HOURS} (retries come for a day)"),
            ));
        }
        if self.default_plan.trim().is_empty() {
            return Err(ConfigError::invalid(
                "app.default_plan",
                "must not be empty",
            ));
        }
        for (plan, rule) in &self.commission {
            if rule.basis_points > Commission::MAX_BASIS_POINTS {
                return Err(ConfigError::invalid(
                    format!("app.commission.{plan}.basis_points"),
                    "must be at most 10000 (100 %)",
                ));
            }
            for (currency, fixed) in &rule.fixed_minor_units {
                let key = format!("app.commission.{plan}.fixed_minor_units.{currency}");
                Currency::parse("currency", currency)
                    .map_err(|err| ConfigError::invalid(key.clone(), err.message().to_owned()))?;
                if *fixed < 0 {
                    return Err(ConfigError::invalid(key, "must not be negative"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use keel_kernel::config::Config;

    use super::*;

    #[test]
    fn the_shipped_config_is_valid_and_keeps_keys_for_a_day_at_least() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/marketplace.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config = Config::<Settings>::from_yaml(&text, &path, std::iter::empty()).unwrap();
        assert_eq!(config.database.schema, "marketplace");
        assert!(config.app.idempotency_retention_hours >= MIN_RETENTION_HOURS);
        let free = config.app.commission(None, "KWD");
        assert_eq!((free.basis_points, free.fixed), (500, 100));
        assert_eq!(config.app.commission(Some("pro"), "JPY").fixed, 20);
    }

    #[test]
    fn a_retention_under_a_day_is_refused_naming_the_key() {
        let settings = Settings {
            idempotency_retention_hours: 23,
            ..Settings::default()
        };
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("app.idempotency_retention_hours"), "{err}");
    }
}
