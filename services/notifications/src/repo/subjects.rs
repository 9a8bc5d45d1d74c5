//! The projection of tasks and orders (`subjects`): who a later event about them concerns.

use keel_kernel::db::TenantTx;
use keel_kernel::{Error, UserId};

/// A task or an order as the notifier needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subject {
    pub title: String,
    pub creator: Option<UserId>,
    pub assignee: Option<UserId>,
    pub buyer: Option<UserId>,
    pub seller: Option<UserId>,
}

#[derive(sqlx::FromRow)]
struct Row {
    title: String,
    creator_id: Option<uuid::Uuid>,
    assignee_id: Option<uuid::Uuid>,
    buyer_id: Option<uuid::Uuid>,
    seller_id: Option<uuid::Uuid>,
}

impl From<Row> for Subject {
    fn from(row: Row) -> Self {
        Subject {
            title: row.title,
            creator: row.creator_id.map(UserId::from_uuid),
            assignee: row.assignee_id.map(UserId::from_uuid),
            buyer: row.buyer_id.map(UserId::from_uuid),
            seller: row.seller_id.map(UserId::from_uuid),
        }
    }
}

pub async fn get(tx: &mut TenantTx, id: uuid::Uuid) -> Result<Option<Subject>, Error> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT title, creator_id, assignee_id, buyer_id, seller_id FROM subjects \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tx.tenant().as_uuid())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Subject::from))
}

/// A new task (title, creator, first assignee).
pub async fn task_created(
    tx: &mut TenantTx,
    id: uuid::Uuid,
    title: &str,
    creator: Option<UserId>,
    assignee: Option<UserId>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO subjects (tenant_id, id, kind, title, creator_id, assignee_id) \
         VALUES ($1, $2, 'task', $3, $4, $5) ON CONFLICT (tenant_id, id) DO UPDATE SET \
           title = EXCLUDED.title, creator_id = EXCLUDED.creator_id",
    )
    .bind(tx.tenant().as_uuid())
    .bind(id)
    .bind(title)
    .bind(creator.map(|u| u.as_uuid()))
    .bind(assignee.map(|u| u.as_uuid()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The task's assignee changed (None: unassigned).
pub async fn task_assignee(
    tx: &mut TenantTx,
    id: uuid::Uuid,
    assignee: Option<UserId>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO subjects (tenant_id, id, kind, assignee_id) VALUES ($1, $2, 'task', $3) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET assignee_id = EXCLUDED.assignee_id",
    )
    .bind(tx.tenant().as_uuid())
    .bind(id)
    .bind(assignee.map(|u| u.as_uuid()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn order_placed(
    tx: &mut TenantTx,
    id: uuid::Uuid,
    buyer: Option<UserId>,
    seller: Option<UserId>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO subjects (tenant_id, id, kind, buyer_id, seller_id) \
         VALUES ($1, $2, 'order', $3, $4) ON CONFLICT (tenant_id, id) DO NOTHING",
    )
    .bind(tx.tenant().as_uuid())
    .bind(id)
    .bind(buyer.map(|u| u.as_uuid()))
    .bind(seller.map(|u| u.as_uuid()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
