//! Preferences: a user's own choice per category, and the tenant's defaults.

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::{Error, UserId};

use crate::domain::{Category, Channels, EmailCadence};

#[derive(sqlx::FromRow)]
struct Row {
    category: Category,
    email: bool,
    in_app: bool,
    email_cadence: EmailCadence,
}

impl From<Row> for (Category, Channels) {
    fn from(row: Row) -> Self {
        (
            row.category,
            Channels {
                email: row.email,
                in_app: row.in_app,
                cadence: row.email_cadence,
            },
        )
    }
}

/// The user's own choices (categories they never chose are absent).
pub async fn of_user(tx: &mut TenantTx, user: UserId) -> Result<Vec<(Category, Channels)>, Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT category, email, in_app, email_cadence FROM user_preferences \
         WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tx.tenant().as_uuid())
    .bind(user.as_uuid())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The tenant's defaults (categories it never set are absent).
pub async fn of_tenant(tx: &mut TenantTx) -> Result<Vec<(Category, Channels)>, Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT category, email, in_app, email_cadence FROM tenant_preferences \
         WHERE tenant_id = $1",
    )
    .bind(tx.tenant().as_uuid())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn set_for_user(
    tx: &mut TenantTx,
    user: UserId,
    category: Category,
    channels: Channels,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO user_preferences \
           (tenant_id, user_id, category, email, in_app, email_cadence, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, user_id, category) DO UPDATE SET \
           email = EXCLUDED.email, in_app = EXCLUDED.in_app, \
           email_cadence = EXCLUDED.email_cadence, updated_at = EXCLUDED.updated_at",
    )
    .bind(tx.tenant().as_uuid())
    .bind(user.as_uuid())
    .bind(category)
    .bind(channels.email)
    .bind(channels.in_app)
    .bind(channels.cadence)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn set_for_tenant(
    tx: &mut TenantTx,
    category: Category,
    channels: Channels,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO tenant_preferences \
           (tenant_id, category, email, in_app, email_cadence, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, category) DO UPDATE SET \
           email = EXCLUDED.email, in_app = EXCLUDED.in_app, \
           email_cadence = EXCLUDED.email_cadence, updated_at = EXCLUDED.updated_at",
    )
    .bind(tx.tenant().as_uuid())
    .bind(category)
    .bind(channels.email)
    .bind(channels.in_app)
    .bind(channels.cadence)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Every category's channels for `user` (None: the tenant's defaults alone): their choice, else
/// the tenant's default, else the platform's; security always on.
pub async fn effective(
    tx: &mut TenantTx,
    user: Option<UserId>,
) -> Result<Vec<(Category, Channels)>, Error> {
    let own = match user {
        Some(user) => of_user(tx, user).await?,
        None => Vec::new(),
    };
    let tenant = of_tenant(tx).await?;
    Ok(Category::ALL
        .iter()
        .map(|category| {
            let pick = |list: &[(Category, Channels)]| {
                list.iter().find(|(c, _)| c == category).map(|(_, ch)| *ch)
            };
            let channels = pick(&own)
                .or_else(|| pick(&tenant))
                .unwrap_or_else(|| category.platform_default())
                .enforce(*category);
            (*category, channels)
        })
        .collect())
}
