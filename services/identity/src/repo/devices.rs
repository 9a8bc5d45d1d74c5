//! Known devices (global): one row per (user, device fingerprint).

use keel_kernel::{Error, UserId};
use sqlx::PgConnection;

/// What recording a sign-in's device found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The user has signed in from this device before.
    Known,
    /// A device new to a user who has other known devices.
    New,
    /// The user had no known device at all (the first sign-in of an account from before devices
    /// were recorded): recorded, but not announced.
    First,
}

/// Record that `user` signed in from `device`, and whether it was new. Concurrent sign-ins from
/// one new device: exactly one of them inserts, so exactly one sees `New`.
pub async fn record(conn: &mut PgConnection, user: UserId, device: &[u8]) -> Result<Seen, Error> {
    let (had_any,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM known_devices WHERE user_id = $1)")
            .bind(user)
            .fetch_one(&mut *conn)
            .await?;
    let inserted: Option<(bool,)> = sqlx::query_as(
        "INSERT INTO known_devices (user_id, device_hash) VALUES ($1, $2) \
         ON CONFLICT (user_id, device_hash) DO UPDATE SET last_seen_at = now() \
         RETURNING (xmax = 0)",
    )
    .bind(user)
    .bind(device)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match inserted {
        Some((true,)) if had_any => Seen::New,
        Some((true,)) => Seen::First,
        _ => Seen::Known,
    })
}
