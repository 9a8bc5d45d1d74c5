//! The inbox: one row per (source event, recipient), numbered per recipient.

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::{Error, EventId, TenantId, UserId};

use crate::domain::{Category, NotificationId};

/// A notification as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: NotificationId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub sequence: i64,
    pub category: Category,
    pub event_type: String,
    pub source_event_id: EventId,
    pub title: String,
    pub body: String,
    pub link: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// What a new notification says.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    pub user_id: UserId,
    pub category: Category,
    pub event_type: &'a str,
    pub source_event_id: EventId,
    pub title: &'a str,
    pub body: &'a str,
    pub link: &'a str,
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: uuid::Uuid,
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    sequence: i64,
    category: Category,
    event_type: String,
    source_event_id: uuid::Uuid,
    title: String,
    body: String,
    link: String,
    created_at: DateTime<Utc>,
    read_at: Option<DateTime<Utc>>,
}

impl From<Row> for Notification {
    fn from(row: Row) -> Self {
        Notification {
            id: NotificationId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            user_id: UserId::from_uuid(row.user_id),
            sequence: row.sequence,
            category: row.category,
            event_type: row.event_type,
            source_event_id: EventId::from_uuid(row.source_event_id),
            title: row.title,
            body: row.body,
            link: row.link,
            created_at: row.created_at,
            read_at: row.read_at,
        }
    }
}

const COLUMNS: &str = "tenant_id, id, user_id, sequence, category, event_type, source_event_id, \
                       title, body, link, created_at, read_at";

/// Add a notification to the recipient's inbox with the next sequence of that inbox (the head's
/// row lock orders the commits). None when this event already notified this user.
pub async fn insert(
    tx: &mut TenantTx,
    new: &NewNotification<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Notification>, Error> {
    let tenant = tx.tenant();
    let sequence: i64 = sqlx::query_scalar(
        "INSERT INTO inbox_heads (tenant_id, user_id, last_sequence) VALUES ($1, $2, 1) \
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET last_sequence = inbox_heads.last_sequence + 1 \
         RETURNING last_sequence",
    )
    .bind(tenant.as_uuid())
    .bind(new.user_id.as_uuid())
    .fetch_one(&mut **tx)
    .await?;
    let row: Option<Row> = sqlx::query_as(&format!(
        "INSERT INTO notifications (tenant_id, id, user_id, sequence, category, event_type, \
         source_event_id, title, body, link, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (tenant_id, user_id, source_event_id) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(tenant.as_uuid())
    .bind(NotificationId::new().as_uuid())
    .bind(new.user_id.as_uuid())
    .bind(sequence)
    .bind(new.category)
    .bind(new.event_type)
    .bind(new.source_event_id.as_uuid())
    .bind(new.title)
    .bind(new.body)
    .bind(new.link)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Notification::from))
}

/// The user's notifications, newest first, after the cursor `(before_sequence)`.
pub async fn list(
    tx: &mut TenantTx,
    user: UserId,
    unread_only: bool,
    before_sequence: Option<i64>,
    limit: i64,
) -> Result<Vec<Notification>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications \
         WHERE tenant_id = $1 AND user_id = $2 AND (NOT $3 OR read_at IS NULL) \
           AND ($4::bigint IS NULL OR sequence < $4) \
         ORDER BY sequence DESC LIMIT $5"
    ))
    .bind(tx.tenant().as_uuid())
    .bind(user.as_uuid())
    .bind(unread_only)
    .bind(before_sequence)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

/// The user's notifications after `sequence`, oldest first (the live stream's read).
pub async fn after(
    tx: &mut TenantTx,
    user: UserId,
    sequence: i64,
    limit: i64,
) -> Result<Vec<Notification>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications \
         WHERE tenant_id = $1 AND user_id = $2 AND sequence > $3 \
         ORDER BY sequence LIMIT $4"
    ))
    .bind(tx.tenant().as_uuid())
    .bind(user.as_uuid())
    .bind(sequence)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

/// The last sequence of the user's inbox (0 when empty).
pub async fn head(tx: &mut TenantTx, user: UserId) -> Result<i64, Error> {
    let head: Option<i64> = sqlx::query_scalar(
        "SELECT last_sequence FROM inbox_heads WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tx.tenant().as_uuid())
    .bind(user.as_uuid())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(head.unwrap_or(0))
}

/// One of the user's notifications; NOT_FOUND when it is not theirs.
pub async fn get(
    tx: &mut TenantTx,
    user: UserId,
    id: NotificationId,
) -> Result<Notification, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE tenant_id = $1 AND user_id = $2 AND id = $3"
    ))
    .bind(tx.tenant().as_uuid())
    .bind(user.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Notification::from)
        .ok_or_else(|| Error::not_found("notification", id))
}

pub async fn unread_count(tx: &mut TenantTx, user: UserId) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM notifications \
         WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL",
    )
    .bind(tx.tenant().as_uuid())
    .bind(user.as_uuid())
    .fetch_one(&mut **tx)
    .await?)
}

/// Mark one read (keeping the first read time); NOT_FOUND when it is not the user's.
pub async fn mark_read(
    tx: &mut TenantTx,
    user: UserId,
    id: NotificationId,
    now: DateTime<Utc>,
) -> Result<Notification, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE notifications SET read_at = COALESCE(read_at, $4) \
         WHERE tenant_id = $1 AND user_id = $2 AND id = $3 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant().as_uuid())
    .bind(user.as_uuid())
    .bind(id.as_uuid())
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Notification::from)
        .ok_or_else(|| Error::not_found("notification", id))
}

/// Mark every unread one of the user read; how many were unread.
pub async fn mark_all_read(
    tx: &mut TenantTx,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<i64, Error> {
    let marked = sqlx::query(
        "UPDATE notifications SET read_at = $3 \
         WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL",
    )
    .bind(tx.tenant().as_uuid())
    .bind(user.as_uuid())
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(i64::try_from(marked).unwrap_or(i64::MAX))
}
