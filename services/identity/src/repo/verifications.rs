//! Email verification tokens (global), stored as hashes.

use chrono::{DateTime, Utc};
use keel_kernel::{Error, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

/// Store a new token for `user`, invalidating the ones issued before it; the new verification's id.
pub async fn replace(
    conn: &mut PgConnection,
    user: UserId,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<Uuid, Error> {
    sqlx::query(
        "UPDATE email_verifications SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user)
    .execute(&mut *conn)
    .await?;
    let (id,): (Uuid,) = sqlx::query_as(
        "INSERT INTO email_verifications (token_hash, user_id, expires_at) VALUES ($1, $2, $3) \
         RETURNING id",
    )
    .bind(token_hash)
    .bind(user)
    .bind(expires_at)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Give the pending verification `id` a new token (the old one stops working): its user and
/// expiry, or `None` when it is unknown, used, superseded or expired.
pub async fn rotate(
    conn: &mut PgConnection,
    id: Uuid,
    token_hash: &[u8],
) -> Result<Option<(UserId, DateTime<Utc>)>, Error> {
    let row: Option<(UserId, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE email_verifications SET token_hash = $2 \
         WHERE id = $1 AND used_at IS NULL AND expires_at > now() RETURNING user_id, expires_at",
    )
    .bind(id)
    .bind(token_hash)
    .fetch_optional(conn)
    .await?;
    Ok(row)
}

/// Use a token: the user it verifies, once; `None` for unknown, used or expired tokens.
pub async fn consume(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Option<UserId>, Error> {
    let row: Option<(UserId,)> = sqlx::query_as(
        "UPDATE email_verifications SET used_at = now() \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING user_id",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(user,)| user))
}
