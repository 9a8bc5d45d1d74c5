//! Invitations (tenant table; run in the tenant's transaction).

use chrono::{DateTime, Utc};
use keel_kernel::db::Tx;
use keel_kernel::{Error, TenantId, UserId};
use uuid::Uuid;

use crate::domain::{Email, Invitation, Role};

const COLUMNS: &str = "tenant_id, id, email, role, invited_by, created_at, expires_at, accepted_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: Uuid,
    email: String,
    role: String,
    invited_by: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    accepted_at: Option<DateTime<Utc>>,
}

impl TryFrom<Row> for Invitation {
    type Error = Error;
    fn try_from(row: Row) -> Result<Invitation, Error> {
        Ok(Invitation {
            id: row.id,
            tenant_id: row.tenant_id,
            email: row.email,
            role: Role::from_db(&row.role)?,
            invited_by: row.invited_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            accepted_at: row.accepted_at,
        })
    }
}

pub struct NewInvitation<'a> {
    pub tenant: TenantId,
    pub email: &'a Email,
    pub role: &'a Role,
    pub token_hash: &'a [u8; 32],
    pub invited_by: &'a str,
    pub expires_at: DateTime<Utc>,
}

#[tracing::instrument(skip_all, fields(tenant_id = %new.tenant))]
pub async fn insert(tx: &mut Tx, new: NewInvitation<'_>) -> Result<Invitation, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO invitations (tenant_id, id, email, role, token_hash, invited_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(new.tenant)
    .bind(Uuid::now_v7())
    .bind(new.email.as_str())
    .bind(new.role.to_string())
    .bind(&new.token_hash[..])
    .bind(new.invited_by)
    .bind(new.expires_at)
    .fetch_one(&mut **tx)
    .await?;
    row.try_into()
}

/// The invitation with this token hash, locked so it is redeemed at most once.
pub async fn find_for_update(
    tx: &mut Tx,
    tenant: TenantId,
    token_hash: &[u8; 32],
) -> Result<Option<Invitation>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE tenant_id = $1 AND token_hash = $2 FOR UPDATE"
    ))
    .bind(tenant)
    .bind(&token_hash[..])
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Invitation::try_from).transpose()
}

pub async fn mark_accepted(
    tx: &mut Tx,
    tenant: TenantId,
    id: Uuid,
    user: UserId,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE invitations SET accepted_at = now(), accepted_by = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(user)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
