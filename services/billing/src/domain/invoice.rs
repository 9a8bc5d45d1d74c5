//! Invoices: DRAFT -> OPEN (finalized, numbered) -> PAID | VOID | UNCOLLECTIBLE.

use chrono::{DateTime, Datelike, Utc};
use keel_kernel::{Error, TenantId};
use keel_proto::billing::v1 as pb;

use super::{Currency, InvoiceId, PriceId, SubscriptionId, TaxRate, scale};

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum InvoiceState {
    Draft,
    Open,
    Paid,
    Void,
    Uncollectible,
}

impl InvoiceState {
    /// OPEN -> VOID; anything else is FAILED_PRECONDITION naming the state.
    pub fn void(self) -> Result<InvoiceState, Error> {
        match self {
            InvoiceState::Open => Ok(InvoiceState::Void),
            other => Err(Error::failed_precondition(format!(
                "the invoice is {}; only an OPEN invoice can be voided",
                other.name()
            ))),
        }
    }

    /// OPEN or UNCOLLECTIBLE -> PAID (a late payment still settles a written-off invoice).
    pub fn pay(self) -> Result<InvoiceState, Error> {
        match self {
            InvoiceState::Open | InvoiceState::Uncollectible => Ok(InvoiceState::Paid),
            other => Err(Error::failed_precondition(format!(
                "the invoice is {}; only an OPEN or UNCOLLECTIBLE invoice can be paid",
                other.name()
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            InvoiceState::Draft => "DRAFT",
            InvoiceState::Open => "OPEN",
            InvoiceState::Paid => "PAID",
            InvoiceState::Void => "VOID",
            InvoiceState::Uncollectible => "UNCOLLECTIBLE",
        }
    }
}

impl From<InvoiceState> for pb::InvoiceState {
    fn from(state: InvoiceState) -> pb::InvoiceState {
        match state {
            InvoiceState::Draft => pb::InvoiceState::Draft,
            InvoiceState::Open => pb::InvoiceState::Open,
            InvoiceState::Paid => pb::InvoiceState::Paid,
            InvoiceState::Void => pb::InvoiceState::Void,
            InvoiceState::Uncollectible => pb::InvoiceState::Uncollectible,
        }
    }
}

/// What a line charges for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum LineKind {
    /// A flat price for the period.
    Flat,
    /// A usage price: the period's quantity above the included units.
    Usage,
    /// Usage that occurred in an already-invoiced period and arrived after it closed.
    LateUsage,
    /// Credit for the unused part of a price, or charge for the rest of a period at a new one.
    Proration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    pub kind: LineKind,
    pub description: String,
    pub price_id: Option<PriceId>,
    pub meter_id: String,
    pub quantity: i64,
    pub unit_amount: i64,
    pub amount: i64,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
}

impl InvoiceLine {
    /// `quantity * unit_amount`, refusing an overflow instead of wrapping.
    pub fn amount_of(quantity: i64, unit_amount: i64) -> Result<i64, Error> {
        quantity
            .checked_mul(unit_amount)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("line amount overflows i64")))
    }
}

/// Subtotal, tax and total of a set of lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub subtotal: i64,
    pub tax: i64,
    pub total: i64,
}

impl Totals {
    pub fn of(lines: &[InvoiceLine], tax_rate: TaxRate) -> Result<Totals, Error> {
        let overflow = || Error::internal(anyhow::anyhow!("invoice total overflows i64"));
        let subtotal = lines
            .iter()
            .try_fold(0i64, |sum, line| sum.checked_add(line.amount))
            .ok_or_else(overflow)?;
        let tax = tax_rate.tax_on(subtotal).ok_or_else(overflow)?;
        let total = subtotal.checked_add(tax).ok_or_else(overflow)?;
        Ok(Totals {
            subtotal,
            tax,
            total,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: InvoiceId,
    pub tenant_id: TenantId,
    pub subscription_id: SubscriptionId,
    pub number: Option<String>,
    pub state: InvoiceState,
    pub currency: Currency,
    pub lines: Vec<InvoiceLine>,
    pub totals: Totals,
    pub amount_paid: i64,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub issue_time: Option<DateTime<Utc>>,
    pub due_time: Option<DateTime<Utc>>,
    pub paid_time: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// `KEEL-2026-000123`: the prefix, the year of issue and the year's sequence number.
pub fn invoice_number(prefix: &str, year: i32, sequence: i64) -> String {
    format!("{prefix}-{year}-{sequence:06}")
}

/// The year an invoice issued at `at` is numbered in.
pub fn numbering_year(at: DateTime<Utc>) -> i32 {
    at.year()
}

/// `amount` prorated to `remaining` of `total` seconds, rounded half-up to the minor unit.
pub fn prorate(amount: i64, remaining_seconds: i64, total_seconds: i64) -> Result<i64, Error> {
    scale(amount, remaining_seconds, total_seconds)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("proration overflows i64")))
}

impl From<&InvoiceLine> for pb::InvoiceLineItem {
    fn from(line: &InvoiceLine) -> pb::InvoiceLineItem {
        use keel_kernel::grpc::timestamp;
        pb::InvoiceLineItem {
            description: line.description.clone(),
            price_id: line.price_id.map(|id| id.to_string()).unwrap_or_default(),
            meter_id: line.meter_id.clone(),
            quantity: line.quantity,
            unit_amount: line.unit_amount,
            amount: line.amount,
            period_start_time: Some(timestamp(line.period_start)),
            period_end_time: Some(timestamp(line.period_end)),
        }
    }
}

impl From<&Invoice> for pb::Invoice {
    fn from(invoice: &Invoice) -> pb::Invoice {
        use keel_kernel::grpc::timestamp;
        pb::Invoice {
            id: invoice.id.to_string(),
            tenant_id: invoice.tenant_id.to_string(),
            subscription_id: invoice.subscription_id.to_string(),
            number: invoice.number.clone().unwrap_or_default(),
            state: pb::InvoiceState::from(invoice.state) as i32,
            currency: invoice.currency.code().to_owned(),
            line_items: invoice.lines.iter().map(Into::into).collect(),
            subtotal: invoice.totals.subtotal,
            tax: invoice.totals.tax,
            total: invoice.totals.total,
            amount_paid: invoice.amount_paid,
            period_start_time: Some(timestamp(invoice.period_start)),
            period_end_time: Some(timestamp(invoice.period_end)),
            issue_time: invoice.issue_time.map(timestamp),
            due_time: invoice.due_time.map(timestamp),
            paid_time: invoice.paid_time.map(timestamp),
            create_time: Some(timestamp(invoice.created_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_zero_padded_per_year() {
        assert_eq!(invoice_number("KEEL", 2026, 123), "KEEL-2026-000123");
    }

    #[test]
    fn only_open_invoices_are_voided() {
        assert_eq!(InvoiceState::Open.void().unwrap(), InvoiceState::Void);
        let err = InvoiceState::Paid.void().unwrap_err();
        assert!(err.message().contains("PAID"));
    }

    #[test]
    fn proration_is_to_the_second_and_half_up() {
        // 30-day month, 10 days left of 3000 minor units: 1000.
        assert_eq!(prorate(3000, 10 * 86_400, 30 * 86_400).unwrap(), 1000);
        assert_eq!(prorate(1, 1, 2).unwrap(), 1);
        assert_eq!(prorate(-1, 1, 2).unwrap(), -1);
    }
}
