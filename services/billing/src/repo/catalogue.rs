//! The catalogue: meters, plans and prices (global tables).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keel_kernel::Error;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::domain::{
    Aggregation, BillingInterval, Currency, Meter, NewPlan, NewPrice, Plan, Price, PriceId,
    PriceKind,
};

/// The id of the price with `key` in plan `plan`: derived, so that seeding the same catalogue
/// gives the same ids on every start and every replica.
pub fn price_id(plan: &str, key: &str) -> PriceId {
    let digest = Sha256::digest(format!("keel.billing.price/{plan}/{key}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // A version-8 (custom) UUID with the RFC 4122 variant.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    PriceId::from_uuid(uuid::Uuid::from_bytes(bytes))
}

#[derive(sqlx::FromRow)]
struct MeterRow {
    id: String,
    display_name: String,
    unit: String,
    aggregation: Aggregation,
}

impl From<MeterRow> for Meter {
    fn from(row: MeterRow) -> Meter {
        Meter {
            id: row.id,
            display_name: row.display_name,
            unit: row.unit,
            aggregation: row.aggregation,
        }
    }
}

#[derive(sqlx::FromRow)]
struct PlanRow {
    id: String,
    display_name: String,
    description: String,
    limits: Json<BTreeMap<String, i64>>,
    modules: Vec<String>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct PriceRow {
    id: PriceId,
    plan_id: String,
    currency: String,
    unit_amount: i64,
    billing_interval: BillingInterval,
    meter_id: Option<String>,
    included_units: i64,
}

impl TryFrom<PriceRow> for Price {
    type Error = Error;
    fn try_from(row: PriceRow) -> Result<Price, Error> {
        let currency = Currency::parse("currency", &row.currency).map_err(|_| {
            Error::internal(anyhow::anyhow!(
                "stored price has currency {}",
                row.currency
            ))
        })?;
        let kind = match row.meter_id {
            None => PriceKind::Flat,
            Some(meter_id) => PriceKind::Usage {
                meter_id,
                included_units: row.included_units,
            },
        };
        Ok(Price {
            id: row.id,
            plan_id: row.plan_id,
            price: NewPrice {
                currency,
                unit_amount: row.unit_amount,
                interval: row.billing_interval,
                kind,
            },
        })
    }
}

const PRICE_COLUMNS: &str =
    "id, plan_id, currency, unit_amount, billing_interval, meter_id, included_units";

/// Insert or update the configured meters; a row equal to its config is not touched.
pub async fn seed_meters(conn: &mut PgConnection, meters: &[Meter]) -> Result<(), Error> {
    for meter in meters {
        sqlx::query(
            "INSERT INTO meters (id, display_name, unit, aggregation) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE \
                SET display_name = EXCLUDED.display_name, unit = EXCLUDED.unit, \
                    aggregation = EXCLUDED.aggregation \
              WHERE (meters.display_name, meters.unit, meters.aggregation) \
                    IS DISTINCT FROM (EXCLUDED.display_name, EXCLUDED.unit, EXCLUDED.aggregation)",
        )
        .bind(&meter.id)
        .bind(&meter.display_name)
        .bind(&meter.unit)
        .bind(meter.aggregation)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Insert or update a configured plan (the `position`-th in config) and its prices; rows equal
/// to the config are not touched (no `updated_at` bump), so a restart changes nothing. Prices are
/// never deleted: existing subscriptions refer to them.
pub async fn seed_plan(
    conn: &mut PgConnection,
    plan: &NewPlan,
    position: usize,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO plans (id, display_name, description, limits, modules, position) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE \
            SET display_name = EXCLUDED.display_name, description = EXCLUDED.description, \
                limits = EXCLUDED.limits, modules = EXCLUDED.modules, position = EXCLUDED.position, \
                updated_at = now() \
          WHERE (plans.display_name, plans.description, plans.limits, plans.modules, plans.position) \
                IS DISTINCT FROM (EXCLUDED.display_name, EXCLUDED.description, EXCLUDED.limits, \
                                  EXCLUDED.modules, EXCLUDED.position)",
    )
    .bind(&plan.id)
    .bind(&plan.display_name)
    .bind(&plan.description)
    .bind(Json(&plan.limits))
    .bind(&plan.modules)
    .bind(i32::try_from(position).unwrap_or(i32::MAX))
    .execute(&mut *conn)
    .await?;
    for (position, price) in plan.prices.iter().enumerate() {
        upsert_price(conn, &plan.id, position, price).await?;
    }
    Ok(())
}

async fn upsert_price(
    conn: &mut PgConnection,
    plan: &str,
    position: usize,
    price: &NewPrice,
) -> Result<(), Error> {
    let key = price.key();
    let (meter_id, included_units) = match &price.kind {
        PriceKind::Flat => (None, 0),
        PriceKind::Usage {
            meter_id,
            included_units,
        } => (Some(meter_id.as_str()), *included_units),
    };
    sqlx::query(
        "INSERT INTO prices (id, plan_id, key, position, currency, unit_amount, billing_interval, \
                             meter_id, included_units) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (id) DO UPDATE \
            SET position = EXCLUDED.position, unit_amount = EXCLUDED.unit_amount, \
                included_units = EXCLUDED.included_units \
          WHERE (prices.position, prices.unit_amount, prices.included_units) \
                IS DISTINCT FROM (EXCLUDED.position, EXCLUDED.unit_amount, EXCLUDED.included_units)",
    )
    .bind(price_id(plan, &key))
    .bind(plan)
    .bind(&key)
    .bind(i32::try_from(position).unwrap_or(i32::MAX))
    .bind(price.currency.code())
    .bind(price.unit_amount)
    .bind(price.interval)
    .bind(meter_id)
    .bind(included_units)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Insert a new plan (CreatePlan); CONFLICT when the id is taken.
pub async fn insert_plan(conn: &mut PgConnection, plan: &NewPlan) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO plans (id, display_name, description, limits, modules, position) \
         VALUES ($1, $2, $3, $4, $5, (SELECT COALESCE(max(position), 0) + 1 FROM plans))",
    )
    .bind(&plan.id)
    .bind(&plan.display_name)
    .bind(&plan.description)
    .bind(Json(&plan.limits))
    .bind(&plan.modules)
    .execute(&mut *conn)
    .await
    .map_err(|err| {
        Error::from(err).on_constraint(
            "plans_pkey",
            format!("a plan with id `{}` already exists", plan.id),
        )
    })?;
    for (position, price) in plan.prices.iter().enumerate() {
        upsert_price(conn, &plan.id, position, price).await?;
    }
    Ok(())
}

async fn prices_of(conn: &mut PgConnection, plans: &[String]) -> Result<Vec<Price>, Error> {
    let rows: Vec<PriceRow> = sqlx::query_as(&format!(
        "SELECT {PRICE_COLUMNS} FROM prices WHERE plan_id = ANY($1) ORDER BY plan_id, position"
    ))
    .bind(plans)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Price::try_from).collect()
}

fn assemble(rows: Vec<PlanRow>, mut prices: Vec<Price>) -> Vec<Plan> {
    rows.into_iter()
        .map(|row| {
            let (mine, rest): (Vec<Price>, Vec<Price>) =
                prices.drain(..).partition(|p| p.plan_id == row.id);
            prices = rest;
            Plan {
                id: row.id,
                display_name: row.display_name,
                description: row.description,
                prices: mine,
                limits: row.limits.0,
                modules: row.modules,
                created_at: row.created_at,
            }
        })
        .collect()
}

const PLAN_COLUMNS: &str = "id, display_name, description, limits, modules, created_at";

/// Every plan in catalogue order (the catalogue is short: callers page it in memory).
pub async fn list_plans(conn: &mut PgConnection) -> Result<Vec<Plan>, Error> {
    let rows: Vec<PlanRow> = sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans ORDER BY position, created_at, id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let prices = prices_of(conn, &ids).await?;
    Ok(assemble(rows, prices))
}

pub async fn get_plan(conn: &mut PgConnection, id: &str) -> Result<Option<Plan>, Error> {
    let row: Option<PlanRow> =
        sqlx::query_as(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let prices = prices_of(conn, std::slice::from_ref(&row.id)).await?;
    Ok(assemble(vec![row], prices).pop())
}

pub async fn get_price(conn: &mut PgConnection, id: PriceId) -> Result<Option<Price>, Error> {
    let row: Option<PriceRow> =
        sqlx::query_as(&format!("SELECT {PRICE_COLUMNS} FROM prices WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(Price::try_from).transpose()
}

pub async fn list_meters(conn: &mut PgConnection) -> Result<Vec<Meter>, Error> {
    let rows: Vec<MeterRow> =
        sqlx::query_as("SELECT id, display_name, unit, aggregation FROM meters ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(Meter::from).collect())
}
