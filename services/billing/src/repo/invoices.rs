//! Invoices and their lines (tenant tables), and the per-year number counters (global).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::{Error, TenantId};
use sqlx::PgConnection;

use crate::domain::{
    Currency, Invoice, InvoiceId, InvoiceLine, InvoiceState, LineKind, PriceId, SubscriptionId,
    Totals,
};

const COLUMNS: &str = "tenant_id, id, subscription_id, number, state, currency, subtotal, tax, \
                       total, amount_paid, period_start, period_end, issue_time, due_time, \
                       paid_time, created_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: InvoiceId,
    subscription_id: SubscriptionId,
    number: Option<String>,
    state: InvoiceState,
    currency: String,
    subtotal: i64,
    tax: i64,
    total: i64,
    amount_paid: i64,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
    issue_time: Option<DateTime<Utc>>,
    due_time: Option<DateTime<Utc>>,
    paid_time: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    invoice_id: InvoiceId,
    kind: LineKind,
    description: String,
    price_id: Option<PriceId>,
    meter_id: String,
    quantity: i64,
    unit_amount: i64,
    amount: i64,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
}

impl From<LineRow> for InvoiceLine {
    fn from(row: LineRow) -> InvoiceLine {
        InvoiceLine {
            kind: row.kind,
            description: row.description,
            price_id: row.price_id,
            meter_id: row.meter_id,
            quantity: row.quantity,
            unit_amount: row.unit_amount,
            amount: row.amount,
            period_start: row.period_start,
            period_end: row.period_end,
        }
    }
}

fn invoice(row: Row, lines: Vec<InvoiceLine>) -> Result<Invoice, Error> {
    let currency = Currency::parse("currency", &row.currency).map_err(|_| {
        Error::internal(anyhow::anyhow!(
            "stored invoice has currency {}",
            row.currency
        ))
    })?;
    Ok(Invoice {
        id: row.id,
        tenant_id: row.tenant_id,
        subscription_id: row.subscription_id,
        number: row.number,
        state: row.state,
        currency,
        lines,
        totals: Totals {
            subtotal: row.subtotal,
            tax: row.tax,
            total: row.total,
        },
        amount_paid: row.amount_paid,
        period_start: row.period_start,
        period_end: row.period_end,
        issue_time: row.issue_time,
        due_time: row.due_time,
        paid_time: row.paid_time,
        created_at: row.created_at,
    })
}

async fn with_lines(tx: &mut TenantTx, rows: Vec<Row>) -> Result<Vec<Invoice>, Error> {
    let ids: Vec<InvoiceId> = rows.iter().map(|r| r.id).collect();
    let lines: Vec<LineRow> = sqlx::query_as(
        "SELECT invoice_id, kind, description, price_id, meter_id, quantity, unit_amount, amount, \
                period_start, period_end \
           FROM invoice_lines WHERE tenant_id = $1 AND invoice_id = ANY($2) \
          ORDER BY invoice_id, position",
    )
    .bind(tx.tenant())
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut lines: Vec<(InvoiceId, InvoiceLine)> = lines
        .into_iter()
        .map(|l| (l.invoice_id, l.into()))
        .collect();
    rows.into_iter()
        .map(|row| {
            let (mine, rest): (Vec<_>, Vec<_>) = lines.drain(..).partition(|(id, _)| *id == row.id);
            lines = rest;
            invoice(row, mine.into_iter().map(|(_, line)| line).collect())
        })
        .collect()
}

/// Insert a finalized (or draft) invoice with its lines. FAILED_PRECONDITION when the
/// subscription already has an invoice for this period (the unique constraint: two workers
/// closing one period give one invoice).
pub async fn insert(tx: &mut TenantTx, invoice: &Invoice) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO invoices (tenant_id, id, subscription_id, number, state, currency, subtotal, \
                               tax, total, amount_paid, period_start, period_end, issue_time, \
                               due_time, paid_time, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(tx.tenant())
    .bind(invoice.id)
    .bind(invoice.subscription_id)
    .bind(&invoice.number)
    .bind(invoice.state)
    .bind(invoice.currency.code())
    .bind(invoice.totals.subtotal)
    .bind(invoice.totals.tax)
    .bind(invoice.totals.total)
    .bind(invoice.amount_paid)
    .bind(invoice.period_start)
    .bind(invoice.period_end)
    .bind(invoice.issue_time)
    .bind(invoice.due_time)
    .bind(invoice.paid_time)
    .bind(invoice.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|err| {
        let err = Error::from(err);
        if err.constraint() == Some("invoices_one_per_period") {
            Error::failed_precondition("this period of the subscription is already invoiced")
        } else {
            err
        }
    })?;
    for (position, line) in invoice.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO invoice_lines (tenant_id, invoice_id, position, kind, description, price_id, \
                                        meter_id, quantity, unit_amount, amount, period_start, period_end) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(tx.tenant())
        .bind(invoice.id)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(line.kind)
        .bind(&line.description)
        .bind(line.price_id)
        .bind(&line.meter_id)
        .bind(line.quantity)
        .bind(line.unit_amount)
        .bind(line.amount)
        .bind(line.period_start)
        .bind(line.period_end)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Whether the subscription already has an invoice starting at `period_start`.
pub async fn exists_for_period(
    tx: &mut TenantTx,
    subscription: SubscriptionId,
    period_start: DateTime<Utc>,
) -> Result<bool, Error> {
    let (exists,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM invoices WHERE tenant_id = $1 AND subscription_id = $2 \
                                                AND period_start = $3)",
    )
    .bind(tx.tenant())
    .bind(subscription)
    .bind(period_start)
    .fetch_one(&mut **tx)
    .await?;
    Ok(exists)
}

pub async fn get(tx: &mut TenantTx, id: InvoiceId) -> Result<Option<Invoice>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoices WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(with_lines(tx, vec![row]).await?.pop()),
    }
}

/// The invoice, locked until the transaction ends.
pub async fn lock(tx: &mut TenantTx, id: InvoiceId) -> Result<Invoice, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoices WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let row = row.ok_or_else(|| Error::not_found("invoice", id))?;
    with_lines(tx, vec![row])
        .await?
        .pop()
        .ok_or_else(|| Error::not_found("invoice", id))
}

/// The tenant's invoices, newest first, optionally in one state.
pub async fn list(
    tx: &mut TenantTx,
    state: Option<InvoiceState>,
    after: Option<TimeId>,
    limit: i64,
) -> Result<Vec<Invoice>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoices WHERE tenant_id = $1 \
            AND ($2::text IS NULL OR state = $2) \
            AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4)) \
          ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(tx.tenant())
    .bind(state)
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    with_lines(tx, rows).await
}

/// Write back the state and payment fields.
pub async fn save_state(tx: &mut TenantTx, invoice: &Invoice) -> Result<(), Error> {
    sqlx::query(
        "UPDATE invoices SET state = $3, amount_paid = $4, paid_time = $5 \
          WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tx.tenant())
    .bind(invoice.id)
    .bind(invoice.state)
    .bind(invoice.amount_paid)
    .bind(invoice.paid_time)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The next invoice number of `year`: the year's counter row is locked (`SELECT ... FOR
/// UPDATE`) until the caller's transaction ends, so concurrent finalizations take numbers one
/// after the other and a rolled-back one gives its number back: no gaps, no repeats. Call it as
/// late as possible in the transaction: the lock is held until commit.
pub async fn next_number(conn: &mut PgConnection, year: i32) -> Result<i64, Error> {
    sqlx::query(
        "INSERT INTO invoice_counters (year, last) VALUES ($1, 0) ON CONFLICT (year) DO NOTHING",
    )
    .bind(year)
    .execute(&mut *conn)
    .await?;
    let (last,): (i64,) =
        sqlx::query_as("SELECT last FROM invoice_counters WHERE year = $1 FOR UPDATE")
            .bind(year)
            .fetch_one(&mut *conn)
            .await?;
    let next = last + 1;
    sqlx::query("UPDATE invoice_counters SET last = $2 WHERE year = $1")
        .bind(year)
        .bind(next)
        .execute(&mut *conn)
        .await?;
    Ok(next)
}

/// Set the number of an invoice inserted as DRAFT and mark it OPEN (or PAID for a zero total).
pub async fn finalize(
    tx: &mut TenantTx,
    id: InvoiceId,
    number: &str,
    state: InvoiceState,
    paid_time: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE invoices SET number = $3, state = $4, paid_time = $5 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tx.tenant())
    .bind(id)
    .bind(number)
    .bind(state)
    .bind(paid_time)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Lines carried to the next invoice of a subscription (prorations), not yet taken.
pub async fn add_pending_line(
    tx: &mut TenantTx,
    subscription: SubscriptionId,
    line: &InvoiceLine,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO pending_lines (tenant_id, id, subscription_id, description, price_id, quantity, \
                                    unit_amount, amount, period_start, period_end, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(tx.tenant())
    .bind(uuid::Uuid::now_v7())
    .bind(subscription)
    .bind(&line.description)
    .bind(line.price_id)
    .bind(line.quantity)
    .bind(line.unit_amount)
    .bind(line.amount)
    .bind(line.period_start)
    .bind(line.period_end)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Take the subscription's pending lines for `invoice`, oldest first.
pub async fn take_pending_lines(
    tx: &mut TenantTx,
    subscription: SubscriptionId,
    invoice: InvoiceId,
) -> Result<Vec<InvoiceLine>, Error> {
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        String,
        Option<PriceId>,
        i64,
        i64,
        i64,
        DateTime<Utc>,
        DateTime<Utc>,
    )> = sqlx::query_as(
        "WITH taken AS ( \
                UPDATE pending_lines SET invoice_id = $3 \
                 WHERE tenant_id = $1 AND subscription_id = $2 AND invoice_id IS NULL \
                RETURNING description, price_id, quantity, unit_amount, amount, period_start, \
                          period_end, created_at, id) \
             SELECT description, price_id, quantity, unit_amount, amount, period_start, period_end \
               FROM taken ORDER BY created_at, id",
    )
    .bind(tx.tenant())
    .bind(subscription)
    .bind(invoice)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(description, price_id, quantity, unit_amount, amount, period_start, period_end)| {
                InvoiceLine {
                    kind: LineKind::Proration,
                    description,
                    price_id,
                    meter_id: String::new(),
                    quantity,
                    unit_amount,
                    amount,
                    period_start,
                    period_end,
                }
            },
        )
        .collect())
}
