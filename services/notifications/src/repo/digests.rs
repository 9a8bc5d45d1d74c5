//! The digest queue: notifications waiting for a user's daily digest of their category.

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::{Error, UserId};

use crate::domain::{Category, NotificationId};

pub async fn add(
    tx: &mut TenantTx,
    user: UserId,
    category: Category,
    notification: NotificationId,
    title: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO digest_entries (tenant_id, user_id, category, notification_id, title, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(tx.tenant().as_uuid())
    .bind(user.as_uuid())
    .bind(category)
    .bind(notification.as_uuid())
    .bind(title)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Remove and return the user's waiting entries of `category`, oldest first (the digest job's
/// transaction: if sending fails, they come back with the rollback).
pub async fn take(
    tx: &mut TenantTx,
    user: UserId,
    category: Category,
) -> Result<Vec<String>, Error> {
    let titles: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "DELETE FROM digest_entries WHERE tenant_id = $1 AND user_id = $2 AND category = $3 \
         RETURNING title, created_at",
    )
    .bind(tx.tenant().as_uuid())
    .bind(user.as_uuid())
    .bind(category)
    .fetch_all(&mut **tx)
    .await?;
    let mut titles = titles;
    titles.sort_by_key(|(_, at)| *at);
    Ok(titles.into_iter().map(|(title, _)| title).collect())
}
