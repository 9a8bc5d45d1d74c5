//! A user account as identity knows it.

use chrono::{DateTime, Utc};
use keel_kernel::UserId;

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    /// As the user typed it at registration; comparisons use `Email::normalize`.
    pub email: String,
    pub display_name: String,
    pub email_verified: bool,
    /// BCP 47, canonical case; empty when the user has not chosen (see `domain::locale`).
    pub locale: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
