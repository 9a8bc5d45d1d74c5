//! Proto <-> domain. Requests become domain values through `TryFrom` and parse functions that
//! report every invalid field at once; domain values become proto messages through `From`.

use std::collections::BTreeMap;

use keel_kernel::grpc::{from_timestamp, timestamp};
use keel_kernel::{Error, TenantId, Violations};
use keel_proto::billing::v1 as pb;

use crate::domain::usage::{parse_idempotency_key, parse_quantity};
use crate::domain::{
    Aggregation, BillingInterval, Currency, InvoiceState, Meter, NewPlan, NewPrice, NewUsage, Plan,
    PriceKind, UsageRecord, UsageSummary, parse_meter_id, parse_plan_id,
};

fn missing() -> Error {
    Error::internal(anyhow::anyhow!("validated fields missing"))
}

/// An invoice state filter: UNSPECIFIED means none.
pub fn invoice_state_filter(field: &str, value: i32) -> Result<Option<InvoiceState>, Error> {
    match pb::InvoiceState::try_from(value) {
        Ok(pb::InvoiceState::Unspecified) => Ok(None),
        Ok(pb::InvoiceState::Draft) => Ok(Some(InvoiceState::Draft)),
        Ok(pb::InvoiceState::Open) => Ok(Some(InvoiceState::Open)),
        Ok(pb::InvoiceState::Paid) => Ok(Some(InvoiceState::Paid)),
        Ok(pb::InvoiceState::Void) => Ok(Some(InvoiceState::Void)),
        Ok(pb::InvoiceState::Uncollectible) => Ok(Some(InvoiceState::Uncollectible)),
        Err(_) => Err(Error::invalid(field, "is not an invoice state")),
    }
}

/// A meter id, dotted (`ai.tokens`) or a single word (`seats`).
pub fn meter_id(field: &str, value: &str) -> Result<String, Error> {
    parse_meter_id(field, value).or_else(|err| parse_plan_id(field, value).map_err(|_| err))
}

fn text(field: &str, value: &str, max: usize, required: bool) -> Result<String, Error> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters long"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

/// CreatePlan's plan, validated (the meters a usage price names are checked against `meters`).
pub fn new_plan(plan: Option<pb::Plan>, meters: &[Meter]) -> Result<NewPlan, Error> {
    let plan = plan.ok_or_else(|| Error::invalid("plan", "is required"))?;
    let mut violations = Violations::default();
    let id = violations.check(parse_plan_id("plan.id", &plan.id));
    let display_name = violations.check(text("plan.display_name", &plan.display_name, 200, true));
    let description = violations.check(text("plan.description", &plan.description, 2000, false));
    let mut prices = Vec::new();
    for (index, price) in plan.prices.iter().enumerate() {
        let at = |name: &str| format!("plan.prices[{index}].{name}");
        let currency = violations.check(Currency::parse(&at("currency"), &price.currency));
        let interval = match pb::BillingInterval::try_from(price.interval) {
            Ok(pb::BillingInterval::Month) => Some(BillingInterval::Month),
            Ok(pb::BillingInterval::Year) => Some(BillingInterval::Year),
            _ => {
                violations.add(at("interval"), "must be MONTH or YEAR");
                None
            }
        };
        let kind = if price.meter_id.is_empty() {
            Some(PriceKind::Flat)
        } else {
            violations
                .check(meter_id(&at("meter_id"), &price.meter_id))
                .map(|meter_id| PriceKind::Usage {
                    meter_id,
                    included_units: price.included_units,
                })
        };
        if let (Some(currency), Some(interval), Some(kind)) = (currency, interval, kind) {
            prices.push(NewPrice {
                currency,
                unit_amount: price.unit_amount,
                interval,
                kind,
            });
        }
    }
    let mut modules = Vec::new();
    for (index, module) in plan.modules.iter().enumerate() {
        if let Some(module) =
            violations.check(parse_plan_id(&format!("plan.modules[{index}]"), module))
        {
            modules.push(module);
        }
    }
    let mut limits = BTreeMap::new();
    for (feature, limit) in &plan.limits {
        if let Some(feature) =
            violations.check(meter_id(&format!("plan.limits.{feature}"), feature))
        {
            limits.insert(feature, *limit);
        }
    }
    violations.finish()?;
    let new = NewPlan {
        id: id.ok_or_else(missing)?,
        display_name: display_name.ok_or_else(missing)?,
        description: description.ok_or_else(missing)?,
        prices,
        limits,
        modules,
    };
    let known: Vec<String> = meters.iter().map(|m| m.id.clone()).collect();
    let mut violations = Violations::default();
    for (field, problem) in new.check("plan", &known) {
        violations.add(field, problem);
    }
    violations.finish()?;
    Ok(new)
}

/// RecordUsage's tenant and record, validated.
pub fn new_usage(request: pb::RecordUsageRequest) -> Result<(TenantId, NewUsage), Error> {
    let mut violations = Violations::default();
    let tenant = violations.check(TenantId::parse_field("tenant_id", &request.tenant_id));
    let Some(record) = request.usage_record else {
        violations.add("usage_record", "is required");
        violations.finish()?;
        return Err(missing());
    };
    let meter = violations.check(meter_id("usage_record.meter_id", &record.meter_id));
    let quantity = violations.check(parse_quantity("usage_record.quantity", record.quantity));
    let occur_time = match &record.occur_time {
        Some(at) => violations.check(from_timestamp("usage_record.occur_time", at)),
        None => {
            violations.add("usage_record.occur_time", "is required");
            None
        }
    };
    let key = violations.check(parse_idempotency_key(
        "usage_record.idempotency_key",
        &record.idempotency_key,
    ));
    violations.finish()?;
    Ok((
        tenant.ok_or_else(missing)?,
        NewUsage {
            meter_id: meter.ok_or_else(missing)?,
            quantity: quantity.ok_or_else(missing)?,
            occur_time: occur_time.ok_or_else(missing)?,
            idempotency_key: key.ok_or_else(missing)?,
        },
    ))
}

/// The paths UpdateSubscription may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionMask {
    pub price_id: bool,
    pub cancel_at_period_end: bool,
}

/// UpdateSubscription's mask: required, and only `price_id` / `cancel_at_period_end`.
pub fn subscription_mask(
    mask: Option<prost_types::FieldMask>,
    violations: &mut Violations,
) -> SubscriptionMask {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        violations.add(
            "update_mask",
            "is required: name `price_id` and/or `cancel_at_period_end`",
        );
    }
    let mut parsed = SubscriptionMask {
        price_id: false,
        cancel_at_period_end: false,
    };
    for path in &paths {
        match path.as_str() {
            "price_id" => parsed.price_id = true,
            "cancel_at_period_end" => parsed.cancel_at_period_end = true,
            other => violations.add(
                "update_mask",
                format!(
                    "`{other}` cannot be updated; only `price_id` and `cancel_at_period_end` can"
                ),
            ),
        }
    }
    parsed
}

impl From<&Plan> for pb::Plan {
    fn from(plan: &Plan) -> pb::Plan {
        pb::Plan {
            id: plan.id.clone(),
            display_name: plan.display_name.clone(),
            description: plan.description.clone(),
            prices: plan
                .prices
                .iter()
                .map(|price| {
                    let (meter_id, included_units) = match &price.price.kind {
                        PriceKind::Flat => (String::new(), 0),
                        PriceKind::Usage {
                            meter_id,
                            included_units,
                        } => (meter_id.clone(), *included_units),
                    };
                    pb::Price {
                        id: price.id.to_string(),
                        currency: price.price.currency.code().to_owned(),
                        unit_amount: price.price.unit_amount,
                        interval: match price.price.interval {
                            BillingInterval::Month => pb::BillingInterval::Month,
                            BillingInterval::Year => pb::BillingInterval::Year,
                        } as i32,
                        meter_id,
                        included_units,
                    }
                })
                .collect(),
            limits: plan.limits.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            modules: plan.modules.clone(),
            create_time: Some(timestamp(plan.created_at)),
        }
    }
}

impl From<&Meter> for pb::Meter {
    fn from(meter: &Meter) -> pb::Meter {
        pb::Meter {
            id: meter.id.clone(),
            display_name: meter.display_name.clone(),
            unit: meter.unit.clone(),
            aggregation: match meter.aggregation {
                Aggregation::Sum => pb::MeterAggregation::Sum,
                Aggregation::Count => pb::MeterAggregation::Count,
                Aggregation::Max => pb::MeterAggregation::Max,
            } as i32,
        }
    }
}

impl From<&UsageRecord> for pb::UsageRecord {
    fn from(record: &UsageRecord) -> pb::UsageRecord {
        pb::UsageRecord {
            id: record.id.to_string(),
            tenant_id: record.tenant_id.to_string(),
            meter_id: record.meter_id.clone(),
            quantity: record.quantity,
            occur_time: Some(timestamp(record.occur_time)),
            idempotency_key: record.idempotency_key.clone(),
        }
    }
}

impl From<&UsageSummary> for pb::UsageSummary {
    fn from(summary: &UsageSummary) -> pb::UsageSummary {
        pb::UsageSummary {
            meter_id: summary.meter_id.clone(),
            quantity: summary.quantity,
            start_time: Some(timestamp(summary.start)),
            end_time: Some(timestamp(summary.end)),
        }
    }
}
