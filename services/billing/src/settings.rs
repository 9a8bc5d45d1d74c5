//! Billing's own settings: the `app` section of `config/billing.yaml`, with the seeded catalogue.

use std::collections::BTreeMap;

use keel_kernel::config::{ConfigError, Validate};
use serde::Deserialize;

use crate::domain::{
    Aggregation, BillingInterval, Currency, Meter, NewPlan, NewPrice, PriceKind, TaxRate,
    parse_meter_id, parse_plan_id,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The plan a new tenant is subscribed to (its first flat price), and what a tenant without a
    /// live subscription is entitled to.
    pub default_plan: String,
    /// Tax on every invoice, in basis points (2100 = 21 %); rounded half-up to the minor unit.
    pub tax_rate_basis_points: u32,
    /// `KEEL` gives invoice numbers `KEEL-2026-000123`.
    pub invoice_number_prefix: String,
    /// Days between an invoice's issue and its due date.
    pub payment_terms_days: u32,
    /// Days a PAST_DUE subscription stays in service after a failed payment before its invoice is
    /// UNCOLLECTIBLE and the subscription canceled.
    pub dunning_grace_days: u32,
    /// How far a webhook signature's timestamp may be from now.
    pub webhook_tolerance_secs: u32,
    pub meters: Vec<MeterSettings>,
    pub plans: Vec<PlanSettings>,
    /// Payment providers by name (`stripe`), with their signing secrets.
    pub webhook_providers: BTreeMap<String, WebhookProvider>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterSettings {
    pub id: String,
    pub display_name: String,
    pub unit: String,
    pub aggregation: Aggregation,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSettings {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    pub prices: Vec<PriceSettings>,
    #[serde(default)]
    pub limits: BTreeMap<String, i64>,
    #[serde(default)]
    pub modules: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSettings {
    pub currency: String,
    pub unit_amount: i64,
    pub interval: BillingInterval,
    /// Set for a usage price: the meter charged per unit.
    #[serde(default)]
    pub meter_id: Option<String>,
    #[serde(default)]
    pub included_units: i64,
}

/// One payment provider's webhook settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookProvider {
    /// Comma-separated signing secrets, all accepted (several while rotating). Override from the
    /// environment: `KEEL__APP__WEBHOOK_PROVIDERS__STRIPE__SIGNING_SECRETS=new,old`.
    pub signing_secrets: String,
}

impl WebhookProvider {
    pub fn secrets(&self) -> Vec<String> {
        self.signing_secrets
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl std::fmt::Debug for WebhookProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookProvider")
            .field(
                "signing_secrets",
                &format!("[{} redacted]", self.secrets().len()),
            )
            .finish()
    }
}

fn flat(currency: &str, unit_amount: i64) -> PriceSettings {
    PriceSettings {
        currency: currency.into(),
        unit_amount,
        interval: BillingInterval::Month,
        meter_id: None,
        included_units: 0,
    }
}

fn usage(meter: &str, unit_amount: i64, included_units: i64) -> PriceSettings {
    PriceSettings {
        currency: "EUR".into(),
        unit_amount,
        interval: BillingInterval::Month,
        meter_id: Some(meter.into()),
        included_units,
    }
}

impl Settings {
    /// The standard catalogue (also what config/billing.yaml seeds): three meters; `free`,
    /// `pro` and `enterprise` plans in EUR.
    pub fn standard_catalogue() -> (Vec<MeterSettings>, Vec<PlanSettings>) {
        let meter = |id: &str, name: &str, unit: &str, aggregation| MeterSettings {
            id: id.into(),
            display_name: name.into(),
            unit: unit.into(),
            aggregation,
        };
        let meters = vec![
            meter("ai.tokens", "AI tokens", "token", Aggregation::Sum),
            meter(
                "marketplace.orders",
                "Marketplace orders",
                "order",
                Aggregation::Count,
            ),
            meter("seats", "Seats", "seat", Aggregation::Max),
        ];
        let plan =
            |id: &str, name: &str, prices, limits: &[(&str, i64)], modules: &[&str]| PlanSettings {
                id: id.into(),
                display_name: name.into(),
                description: String::new(),
                prices,
                limits: limits.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
                modules: modules.iter().map(|m| (*m).into()).collect(),
            };
        let plans = vec![
            plan(
                "free",
                "Free",
                vec![flat("EUR", 0)],
                &[("seats", 3), ("ai.tokens.monthly", 100_000)],
                &["delivery", "ai"],
            ),
            plan(
                "pro",
                "Pro",
                vec![
                    flat("EUR", 2_900),
                    usage("ai.tokens", 1, 1_000_000),
                    usage("marketplace.orders", 10, 100),
                ],
                &[("seats", 25), ("ai.tokens.monthly", 5_000_000)],
                &["delivery", "ai", "marketplace", "billing"],
            ),
            plan(
                "enterprise",
                "Enterprise",
                vec![
                    flat("EUR", 49_900),
                    usage("ai.tokens", 1, 50_000_000),
                    usage("marketplace.orders", 5, 10_000),
                ],
                &[("seats", -1), ("ai.tokens.monthly", -1)],
                &["delivery", "ai", "marketplace", "billing"],
            ),
        ];
        (meters, plans)
    }

    /// The configured meters as domain values.
    pub fn meters(&self) -> Vec<Meter> {
        self.meters
            .iter()
            .map(|m| Meter {
                id: m.id.clone(),
                display_name: m.display_name.clone(),
                unit: m.unit.clone(),
                aggregation: m.aggregation,
            })
            .collect()
    }

    /// The configured plans as domain values (valid once `validate` passed).
    pub fn plans(&self) -> Result<Vec<NewPlan>, ConfigError> {
        self.plans
            .iter()
            .enumerate()
            .map(|(index, plan)| plan_of(&format!("app.plans[{index}]"), plan))
            .collect()
    }

    pub fn tax_rate(&self) -> TaxRate {
        TaxRate::saturating(self.tax_rate_basis_points)
    }

    pub fn payment_terms(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.payment_terms_days))
    }

    pub fn dunning_grace(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.dunning_grace_days))
    }
}

fn plan_of(prefix: &str, plan: &PlanSettings) -> Result<NewPlan, ConfigError> {
    let bad = |key: String, err: keel_kernel::Error| {
        let message = err
            .violations()
            .first()
            .map(|v| v.description.clone())
            .unwrap_or_else(|| err.message().to_owned());
        ConfigError::invalid(key, message)
    };
    let id = parse_plan_id("id", &plan.id).map_err(|e| bad(format!("{prefix}.id"), e))?;
    let mut prices = Vec::new();
    for (index, price) in plan.prices.iter().enumerate() {
        let at = format!("{prefix}.prices[{index}]");
        let currency = Currency::parse("currency", &price.currency)
            .map_err(|e| bad(format!("{at}.currency"), e))?;
        let kind = match &price.meter_id {
            None => PriceKind::Flat,
            Some(meter) => PriceKind::Usage {
                meter_id: parse_meter_id("meter_id", meter)
                    .map_err(|e| bad(format!("{at}.meter_id"), e))?,
                included_units: price.included_units,
            },
        };
        prices.push(NewPrice {
            currency,
            unit_amount: price.unit_amount,
            interval: price.interval,
            kind,
        });
    }
    Ok(NewPlan {
        id,
        display_name: plan.display_name.clone(),
        description: plan.description.clone(),
        prices,
        limits: plan.limits.clone(),
        modules: plan.modules.clone(),
    })
}

impl Default for Settings {
    fn default() -> Self {
        let (meters, plans) = Settings::standard_catalogue();
        Settings {
            default_plan: "free".into(),
            tax_rate_basis_points: 0,
            invoice_number_prefix: "KEEL".into(),
            payment_terms_days: 14,
            dunning_grace_days: 7,
            webhook_tolerance_secs: 300,
            meters,
            plans,
            webhook_providers: BTreeMap::new(),
        }
    }
}

impl Validate for Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.tax_rate_basis_points > TaxRate::MAX_BASIS_POINTS {
            return Err(ConfigError::invalid(
                "app.tax_rate_basis_points",
                "must be between 0 and 10000 (100 %)",
            ));
        }
        let prefix_ok = !self.invoice_number_prefix.is_empty()
            && self.invoice_number_prefix.len() <= 16
            && self
                .invoice_number_prefix
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !prefix_ok {
            return Err(ConfigError::invalid(
                "app.invoice_number_prefix",
                "must be 1 to 16 upper-case letters or digits",
            ));
        }
        if self.webhook_tolerance_secs == 0 || self.webhook_tolerance_secs > 3_600 {
            return Err(ConfigError::invalid(
                "app.webhook_tolerance_secs",
                "must be between 1 and 3600",
            ));
        }
        if self.payment_terms_days > 365 {
            return Err(ConfigError::invalid(
                "app.payment_terms_days",
                "must be at most 365",
            ));
        }
        if self.dunning_grace_days > 365 {
            return Err(ConfigError::invalid(
                "app.dunning_grace_days",
                "must be at most 365",
            ));
        }
        let mut meter_ids = Vec::new();
        for (index, meter) in self.meters.iter().enumerate() {
            // Meter ids are dotted (`ai.tokens`) except single-word gauges such as `seats`.
            let valid = parse_meter_id("id", &meter.id)
                .or_else(|_| parse_plan_id("id", &meter.id))
                .is_ok();
            if !valid {
                return Err(ConfigError::invalid(
                    format!("app.meters[{index}].id"),
                    "must be lowercase words separated by dots, such as `ai.tokens`",
                ));
            }
            if meter_ids.contains(&meter.id) {
                return Err(ConfigError::invalid(
                    format!("app.meters[{index}].id"),
                    format!("`{}` is listed twice", meter.id),
                ));
            }
            meter_ids.push(meter.id.clone());
        }
        let plans = self.plans()?;
        let mut plan_ids: Vec<&str> = Vec::new();
        for (index, plan) in plans.iter().enumerate() {
            let prefix = format!("app.plans[{index}]");
            if plan_ids.contains(&plan.id.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{prefix}.id"),
                    format!("`{}` is listed twice", plan.id),
                ));
            }
            plan_ids.push(&plan.id);
            if let Some((key, message)) = plan.check(&prefix, &meter_ids).into_iter().next() {
                return Err(ConfigError::invalid(key, message));
            }
        }
        if !plan_ids.contains(&self.default_plan.as_str()) {
            return Err(ConfigError::invalid(
                "app.default_plan",
                format!("`{}` is not one of app.plans", self.default_plan),
            ));
        }
        for (name, provider) in &self.webhook_providers {
            if provider.secrets().is_empty() {
                return Err(ConfigError::invalid(
                    format!("app.webhook_providers.{name}.signing_secrets"),
                    "needs at least one secret",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalogue_is_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn a_bad_currency_is_reported_at_its_key() {
        let mut settings = Settings::default();
        settings.plans[1].prices[0].currency = "EURO".into();
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("app.plans[1].prices[0].currency"), "{err}");
    }

    #[test]
    fn a_default_plan_outside_the_catalogue_is_refused() {
        let settings = Settings {
            default_plan: "gold".into(),
            ..Settings::default()
        };
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("app.default_plan"), "{err}");
    }
}
