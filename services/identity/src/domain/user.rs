//! A user account as identity knows it.

use chrono::{DateTime, Utc};
use keel_kernel::{Actor, ActorKind, UserId};

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    /// As the user typed it at registration; comparisons use `Email::normalize`.
    pub email: String,
    pub display_name: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The actor of a user acting on their own account, also before they hold a token (registering,
/// logging in, verifying their email).
pub fn acting_user(user: UserId) -> Actor {
    Actor {
        kind: ActorKind::User,
        id: user.to_string(),
    }
}
