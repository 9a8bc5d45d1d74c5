//! The catalogue: meters, plans and their prices. Global (not per tenant): seeded from config at
//! start and extended by platform admins with `CreatePlan`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keel_kernel::Error;

use super::{Currency, PriceId};

/// How often a recurring price is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Deserialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum BillingInterval {
    Month,
    Year,
}

impl BillingInterval {
    pub fn months(self) -> u32 {
        match self {
            BillingInterval::Month => 1,
            BillingInterval::Year => 12,
        }
    }
}

/// How a meter's records add up over a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Deserialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Sum of quantities (tokens).
    Sum,
    /// Number of records (orders).
    Count,
    /// Highest quantity seen, a gauge: the last value before the range counts as seen in it
    /// (peak seats: a tenant with 3 members and no change this month has 3 seats this month).
    Max,
}

/// A plan id: lowercase letters, digits, `-` and `_`, starting with a letter, at most 64.
pub fn parse_plan_id(field: &str, value: &str) -> Result<String, Error> {
    parse_name(field, value, false)
}

/// A meter id: `<context>.<thing>` (dot-separated lowercase words), at most 64.
pub fn parse_meter_id(field: &str, value: &str) -> Result<String, Error> {
    parse_name(field, value, true)
}

fn parse_name(field: &str, value: &str, dotted: bool) -> Result<String, Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    let word_ok = |word: &str| {
        word.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    let ok = value.len() <= 64
        && if dotted {
            value.split('.').count() >= 2 && value.split('.').all(word_ok)
        } else {
            word_ok(value)
        };
    if !ok {
        let shape = if dotted {
            "dot-separated lowercase words such as `ai.tokens`"
        } else {
            "lowercase letters, digits, `-` and `_`, starting with a letter"
        };
        return Err(Error::invalid(
            field,
            format!("must be {shape}, at most 64 characters"),
        ));
    }
    Ok(value.to_owned())
}

/// A usage meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    pub id: String,
    pub display_name: String,
    pub unit: String,
    pub aggregation: Aggregation,
}

/// What a price charges: a flat fee per interval, or a fee per unit of a meter above the units
/// the plan includes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceKind {
    Flat,
    Usage {
        meter_id: String,
        included_units: i64,
    },
}

/// A price as written (config or CreatePlan), before it has an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPrice {
    pub currency: Currency,
    /// Minor units per interval (flat) or per unit (usage).
    pub unit_amount: i64,
    pub interval: BillingInterval,
    pub kind: PriceKind,
}

impl NewPrice {
    /// What identifies the price inside its plan: one flat price per (currency, interval) and
    /// one usage price per (meter, currency, interval). Its id is derived from this, so a
    /// price seeded from config has the same id on every start.
    pub fn key(&self) -> String {
        match &self.kind {
            PriceKind::Flat => format!("flat:{}:{:?}", self.currency, self.interval),
            PriceKind::Usage { meter_id, .. } => {
                format!("usage:{meter_id}:{}:{:?}", self.currency, self.interval)
            }
        }
    }

    pub fn meter_id(&self) -> Option<&str> {
        match &self.kind {
            PriceKind::Flat => None,
            PriceKind::Usage { meter_id, .. } => Some(meter_id),
        }
    }
}

/// A stored price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub id: PriceId,
    pub plan_id: String,
    pub price: NewPrice,
}

impl Price {
    pub fn is_flat(&self) -> bool {
        matches!(self.price.kind, PriceKind::Flat)
    }
}

/// A plan as written, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPlan {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub prices: Vec<NewPrice>,
    /// Feature -> granted amount; -1 unlimited.
    pub limits: BTreeMap<String, i64>,
    pub modules: Vec<String>,
}

impl NewPlan {
    /// The rules that span fields: at least one flat price (what a subscription subscribes to),
    /// no two prices with the same key, usage prices on known meters, limits of -1 or more.
    /// Field paths are relative to `prefix` (`plan` for CreatePlan, `app.plans[2]` for config).
    pub fn check(&self, prefix: &str, known_meters: &[String]) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !self.prices.iter().any(|p| p.kind == PriceKind::Flat) {
            problems.push((
                format!("{prefix}.prices"),
                "needs at least one flat price (the price a subscription subscribes to)".into(),
            ));
        }
        let mut keys = std::collections::HashSet::new();
        for (index, price) in self.prices.iter().enumerate() {
            if !keys.insert(price.key()) {
                problems.push((
                    format!("{prefix}.prices[{index}]"),
                    "repeats another price's meter, currency and interval".into(),
                ));
            }
            if price.unit_amount < 0 {
                problems.push((
                    format!("{prefix}.prices[{index}].unit_amount"),
                    "must not be negative".into(),
                ));
            }
            if let PriceKind::Usage {
                meter_id,
                included_units,
            } = &price.kind
            {
                if !known_meters.iter().any(|m| m == meter_id) {
                    problems.push((
                        format!("{prefix}.prices[{index}].meter_id"),
                        format!("`{meter_id}` is not a meter"),
                    ));
                }
                if *included_units < 0 {
                    problems.push((
                        format!("{prefix}.prices[{index}].included_units"),
                        "must not be negative".into(),
                    ));
                }
            }
        }
        for (feature, limit) in &self.limits {
            if *limit < -1 {
                problems.push((
                    format!("{prefix}.limits.{feature}"),
                    "must be -1 (unlimited) or more".into(),
                ));
            }
        }
        problems
    }
}

/// A stored plan with its prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub prices: Vec<Price>,
    pub limits: BTreeMap<String, i64>,
    pub modules: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// The meter whose usage counts against a limit: `ai.tokens.monthly` -> `ai.tokens` (a monthly
/// allowance of the meter), `seats` -> `seats`; any other feature is the meter of its own name.
pub fn meter_of_feature(feature: &str) -> &str {
    feature.strip_suffix(".monthly").unwrap_or(feature)
}
