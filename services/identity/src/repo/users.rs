//! Users and their credentials (global tables).

use chrono::{DateTime, Utc};
use keel_kernel::{Error, UserId};
use sqlx::PgConnection;

use crate::domain::{DisplayName, Email, User};

#[derive(sqlx::FromRow)]
struct Row {
    id: UserId,
    email: String,
    display_name: String,
    email_verified: bool,
    locale: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for User {
    fn from(row: Row) -> User {
        User {
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            email_verified: row.email_verified,
            locale: row.locale,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const COLUMNS: &str = "id, email, display_name, email_verified, locale, created_at, updated_at";

/// Insert a user and their password hash. A taken email (any case) is CONFLICT.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn create(
    conn: &mut PgConnection,
    id: UserId,
    email: &Email,
    display_name: &DisplayName,
    locale: &str,
    password_hash: &str,
) -> Result<User, Error> {
    let user: Row = sqlx::query_as(&format!(
        "INSERT INTO users (id, email, display_name, locale) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(email.as_str())
    .bind(display_name.as_str())
    .bind(locale)
    .fetch_one(&mut *conn)
    .await
    .map_err(|err| {
        Error::from(err).on_constraint(
            "users_email_key",
            "email: an account with this email already exists",
        )
    })?;
    sqlx::query("INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)")
        .bind(id)
        .bind(password_hash)
        .execute(&mut *conn)
        .await?;
    Ok(user.into())
}

pub async fn get(conn: &mut PgConnection, id: UserId) -> Result<Option<User>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(User::from))
}

/// The user with this email (any case) and their password hash.
pub async fn find_for_login(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<(User, String)>, Error> {
    #[derive(sqlx::FromRow)]
    struct WithHash {
        #[sqlx(flatten)]
        user: Row,
        password_hash: String,
    }
    let row: Option<WithHash> = sqlx::query_as(
        "SELECT u.id, u.email, u.display_name, u.email_verified, u.locale, u.created_at, u.updated_at, c.password_hash \
         FROM users u JOIN credentials c ON c.user_id = u.id WHERE lower(u.email) = $1",
    )
    .bind(Email::normalize(email))
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| (row.user.into(), row.password_hash)))
}

/// The user's password hash, locked for the rest of the transaction.
pub async fn password_hash(conn: &mut PgConnection, id: UserId) -> Result<Option<String>, Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT password_hash FROM credentials WHERE user_id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(hash,)| hash))
}

pub async fn set_password_hash(
    conn: &mut PgConnection,
    id: UserId,
    hash: &str,
) -> Result<(), Error> {
    sqlx::query("UPDATE credentials SET password_hash = $2, updated_at = now() WHERE user_id = $1")
        .bind(id)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Change the fields of the profile a user may edit; `None` leaves a field as it is.
pub async fn update_profile(
    conn: &mut PgConnection,
    id: UserId,
    display_name: Option<&DisplayName>,
    locale: Option<&str>,
) -> Result<Option<User>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE users SET display_name = COALESCE($2, display_name), locale = COALESCE($3, locale), \
         updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(display_name.map(DisplayName::as_str))
    .bind(locale)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(User::from))
}

pub async fn mark_verified(conn: &mut PgConnection, id: UserId) -> Result<Option<User>, Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE users SET email_verified = true, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(User::from))
}
