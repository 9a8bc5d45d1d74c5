//! Billing's domain: money, the catalogue, periods, subscriptions, usage, invoices and webhook
//! signatures; validated values and the rules that need no database.

pub mod catalogue;
pub mod ids;
pub mod invoice;
pub mod money;
pub mod period;
pub mod permissions;
pub mod subscription;
pub mod usage;
pub mod webhook;

pub use catalogue::{
    Aggregation, BillingInterval, Meter, NewPlan, NewPrice, Plan, Price, PriceKind,
    meter_of_feature, parse_meter_id, parse_plan_id,
};
pub use ids::{InvoiceId, PriceId, SubscriptionId, UsageRecordId};
pub use invoice::{Invoice, InvoiceLine, InvoiceState, LineKind, Totals};
pub use money::{Currency, TaxRate, div_round_half_up, scale};
pub use subscription::{CancelReason, Subscription, SubscriptionState};
pub use usage::{NewUsage, UsageRecord, UsageSummary};
