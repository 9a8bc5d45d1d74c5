//! SQL, and only SQL: every function runs in the caller's transaction (`tenant_tx` for tenant
//! tables, so row-level security applies) and maps rows to domain types.

pub mod invitations;
pub mod members;
pub mod modules;
pub mod tenants;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Keyset position of a page: strictly after this (time, id) in ascending order.
pub type After = Option<(DateTime<Utc>, Uuid)>;

/// Whether `err` is a unique violation of `constraint`.
pub(crate) fn violates(err: &sqlx::Error, constraint: &str) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.constraint() == Some(constraint))
}
