//! Password-reset tokens (global), stored as hashes; named in events by id.

use chrono::{DateTime, Utc};
use keel_kernel::{Error, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

/// Open a reset for `user`, superseding its open ones; the new reset's id.
pub async fn replace(
    conn: &mut PgConnection,
    user: UserId,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<Uuid, Error> {
    close_open(conn, user).await?;
    let (id,): (Uuid,) = sqlx::query_as(
        "INSERT INTO password_resets (user_id, token_hash, expires_at) VALUES ($1, $2, $3) \
         RETURNING id",
    )
    .bind(user)
    .bind(token_hash)
    .bind(expires_at)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Mark every open reset of `user` used: none of their tokens works any more.
pub async fn close_open(conn: &mut PgConnection, user: UserId) -> Result<(), Error> {
    sqlx::query(
        "UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user)
    .execute(conn)
    .await?;
    Ok(())
}

/// Give the open reset `id` a new token (the old one stops working): its user and expiry, or
/// `None` when it is unknown, used, superseded or expired.
pub async fn rotate(
    conn: &mut PgConnection,
    id: Uuid,
    token_hash: &[u8],
) -> Result<Option<(UserId, DateTime<Utc>)>, Error> {
    let row: Option<(UserId, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE password_resets SET token_hash = $2 \
         WHERE id = $1 AND used_at IS NULL AND expires_at > now() RETURNING user_id, expires_at",
    )
    .bind(id)
    .bind(token_hash)
    .fetch_optional(conn)
    .await?;
    Ok(row)
}

/// Use a token: the user whose password it resets, once. One UPDATE decides, so of any number of
/// concurrent uses exactly one gets the user; the rest (and unknown or expired tokens) get `None`.
pub async fn consume(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Option<UserId>, Error> {
    let row: Option<(UserId,)> = sqlx::query_as(
        "UPDATE password_resets SET used_at = now() \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING user_id",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(user,)| user))
}
