//! Sessions and their refresh tokens (global tables: a session belongs to a user, not a tenant).

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId, UserId};
use sqlx::PgConnection;

use crate::domain::{RevokeReason, Session, SessionId};

#[derive(sqlx::FromRow)]
struct Row {
    id: SessionId,
    user_id: UserId,
    scope_tenant: Option<TenantId>,
    user_agent: String,
    ip_address: String,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    access_expires_at: DateTime<Utc>,
}

impl From<Row> for Session {
    fn from(row: Row) -> Session {
        Session {
            id: row.id,
            user_id: row.user_id,
            scope_tenant: row.scope_tenant,
            user_agent: row.user_agent,
            ip_address: row.ip_address,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            access_expires_at: row.access_expires_at,
        }
    }
}

fn sessions(rows: Vec<Row>) -> Vec<Session> {
    rows.into_iter().map(Session::from).collect()
}

const COLUMNS: &str = "id, user_id, scope_tenant, user_agent, ip_address, created_at, last_used_at, expires_at, revoked_at, access_expires_at";

pub struct NewSession<'a> {
    pub id: SessionId,
    pub user: UserId,
    pub user_agent: &'a str,
    pub ip_address: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// Open a session; its first refresh token comes with its first token pair.
pub async fn create(conn: &mut PgConnection, session: NewSession<'_>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, user_agent, ip_address, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(session.id)
    .bind(session.user)
    .bind(session.user_agent)
    .bind(session.ip_address)
    .bind(session.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn add_refresh_token(
    conn: &mut PgConnection,
    session: SessionId,
    hash: &[u8],
) -> Result<(), Error> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
        .bind(hash)
        .bind(session)
        .execute(conn)
        .await?;
    Ok(())
}

/// A presented refresh token: its session (locked for the rest of the transaction) and whether
/// the token was already used.
pub struct PresentedToken {
    pub session: Session,
    pub used: bool,
}

/// Look a refresh token up by hash and lock its session, so two refreshes of one family run one
/// after the other (the second then sees the token used and is treated as reuse).
pub async fn find_refresh_token(
    conn: &mut PgConnection,
    hash: &[u8],
) -> Result<Option<PresentedToken>, Error> {
    let token: Option<(SessionId, bool)> = sqlx::query_as(
        "SELECT session_id, used_at IS NOT NULL FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(hash)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((session_id, _)) = token else {
        return Ok(None);
    };
    let session: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE id = $1 FOR UPDATE"
    ))
    .bind(session_id)
    .fetch_one(&mut *conn)
    .await?;
    // Read `used` again under the session lock: the first read may predate a concurrent refresh.
    let (used,): (bool,) =
        sqlx::query_as("SELECT used_at IS NOT NULL FROM refresh_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_one(&mut *conn)
            .await?;
    Ok(Some(PresentedToken {
        session: session.into(),
        used,
    }))
}

/// Retire every unused refresh token of the session (after rotation or a tenant switch only the
/// newest one, added next, is valid).
pub async fn retire_refresh_tokens(
    conn: &mut PgConnection,
    session: SessionId,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET used_at = now() WHERE session_id = $1 AND used_at IS NULL",
    )
    .bind(session)
    .execute(conn)
    .await?;
    Ok(())
}

/// Record a refresh or switch: scope, last use, sliding expiry, and when the access token issued
/// with it expires (kept as the latest, so a revocation can say when its tokens are all gone).
pub async fn touch(
    conn: &mut PgConnection,
    session: SessionId,
    scope: Option<TenantId>,
    expires_at: DateTime<Utc>,
    access_expires_at: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE sessions SET scope_tenant = $2, last_used_at = now(), expires_at = $3, \
         access_expires_at = GREATEST(access_expires_at, $4) WHERE id = $1",
    )
    .bind(session)
    .bind(scope)
    .bind(expires_at)
    .bind(access_expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, id: SessionId) -> Result<Option<Session>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM sessions WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Session::from))
}

/// Revoke one session of `user`; false if it is not theirs or already revoked.
pub async fn revoke(
    conn: &mut PgConnection,
    user: UserId,
    id: SessionId,
    reason: RevokeReason,
) -> Result<Option<Session>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE sessions SET revoked_at = now(), revoke_reason = $3 \
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(user)
    .bind(reason)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Session::from))
}

/// Revoke every live session of `user` except `keep`.
pub async fn revoke_all_but(
    conn: &mut PgConnection,
    user: UserId,
    keep: Option<SessionId>,
    reason: RevokeReason,
) -> Result<Vec<Session>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "UPDATE sessions SET revoked_at = now(), revoke_reason = $3 \
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2) RETURNING {COLUMNS}"
    ))
    .bind(user)
    .bind(keep)
    .bind(reason)
    .fetch_all(conn)
    .await?;
    Ok(sessions(rows))
}

/// Revoke the live sessions scoped to `tenant` (only `user`'s, when given).
pub async fn revoke_scoped(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: Option<UserId>,
    reason: RevokeReason,
) -> Result<Vec<Session>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "UPDATE sessions SET revoked_at = now(), revoke_reason = $3 \
         WHERE scope_tenant = $1 AND ($2::uuid IS NULL OR user_id = $2) AND revoked_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(user)
    .bind(reason)
    .fetch_all(conn)
    .await?;
    Ok(sessions(rows))
}

/// The user's live sessions, newest first, after `after` (a keyset page token).
pub async fn list_live(
    conn: &mut PgConnection,
    user: UserId,
    after: Option<SessionId>,
    limit: i64,
) -> Result<Vec<Session>, Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sessions \
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() AND ($2::uuid IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(user)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(sessions(rows))
}
