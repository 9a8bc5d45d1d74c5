//! Invitations (tenant table).

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::{Actor, ActorKind, Email, Error, TenantId, UserId};

use crate::domain::{Invitation, InvitationId, Role};

const COLUMNS: &str =
    "tenant_id, id, email, role, invited_by_kind, invited_by, created_at, expires_at, accepted_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: TenantId,
    id: InvitationId,
    email: String,
    role: Role,
    invited_by_kind: ActorKind,
    invited_by: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    accepted_at: Option<DateTime<Utc>>,
}

impl From<Row> for Invitation {
    fn from(row: Row) -> Invitation {
        Invitation {
            id: row.id,
            tenant_id: row.tenant_id,
            email: row.email,
            role: row.role,
            invited_by: Actor {
                kind: row.invited_by_kind,
                id: row.invited_by,
            },
            created_at: row.created_at,
            expires_at: row.expires_at,
            accepted_at: row.accepted_at,
        }
    }
}

pub struct NewInvitation<'a> {
    pub email: &'a Email,
    pub role: &'a Role,
    pub token_hash: &'a [u8; 32],
    pub invited_by: &'a Actor,
    pub expires_at: DateTime<Utc>,
}

/// Store an invitation. The address is stored normalised: invitations compare addresses
/// case-insensitively.
#[tracing::instrument(skip_all, fields(tenant_id = %tx.tenant()))]
pub async fn insert(tx: &mut TenantTx, new: NewInvitation<'_>) -> Result<Invitation, Error> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO invitations \
                (tenant_id, id, email, role, token_hash, invited_by_kind, invited_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(InvitationId::new())
    .bind(new.email.normalized())
    .bind(new.role)
    .bind(&new.token_hash[..])
    .bind(new.invited_by.kind)
    .bind(&new.invited_by.id)
    .bind(new.expires_at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// The invitation with this token hash, locked so it is redeemed at most once.
pub async fn find_for_update(
    tx: &mut TenantTx,
    token_hash: &[u8; 32],
) -> Result<Option<Invitation>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE tenant_id = $1 AND token_hash = $2 FOR UPDATE"
    ))
    .bind(tx.tenant())
    .bind(&token_hash[..])
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Invitation::from))
}

pub async fn mark_accepted(tx: &mut TenantTx, id: InvitationId, user: UserId) -> Result<(), Error> {
    sqlx::query(
        "UPDATE invitations SET accepted_at = now(), accepted_by = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tx.tenant())
    .bind(id)
    .bind(user)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The invitation with this id, locked so that issuing a token and redeeming one queue up.
#[tracing::instrument(skip_all, fields(tenant_id = %tx.tenant()))]
pub async fn find_by_id_for_update(
    tx: &mut TenantTx,
    id: InvitationId,
) -> Result<Option<Invitation>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Invitation::from))
}

/// Replace the invitation's token: only the hash of the newest token is kept, so every token
/// issued before stops matching.
#[tracing::instrument(skip_all, fields(tenant_id = %tx.tenant()))]
pub async fn replace_token(
    tx: &mut TenantTx,
    id: InvitationId,
    token_hash: &[u8; 32],
) -> Result<(), Error> {
    sqlx::query("UPDATE invitations SET token_hash = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tx.tenant())
        .bind(id)
        .bind(&token_hash[..])
        .execute(&mut **tx)
        .await?;
    Ok(())
}
