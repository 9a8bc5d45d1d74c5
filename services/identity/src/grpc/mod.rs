//! The gRPC surface: one handler type per proto service, its methods split by use case. Each
//! method builds the caller (or, for public methods, the request's facts), turns the request into
//! domain values, runs one transaction (the change, its events and its audit row together), and
//! turns the result back into proto; `?` turns an error into the client's status.

mod access;
mod api_keys;
mod audit;
mod auth;
pub mod convert;
mod login;
mod password_reset;
pub mod roles;
mod service_tokens;
mod sessions;
mod users;
mod verification;

use std::sync::Arc;

use keel_kernel::outbox::Outbox;
use sqlx::PgPool;

use crate::domain::{PasswordHasherConfig, ServiceClients};
use crate::settings::IdentitySettings;
use crate::tokens::TokenIssuer;

pub use access::Access;
pub use auth::Auth;
pub use users::Users;

/// What every handler shares.
pub struct Context {
    pub db: PgPool,
    pub outbox: Outbox,
    pub settings: IdentitySettings,
    pub tokens: TokenIssuer,
    pub hasher: PasswordHasherConfig,
    /// A hash of a random password, verified against when the email is unknown, so that a login
    /// for a missing account takes as long as one with a wrong password.
    pub dummy_hash: String,
    /// Who may obtain a service token (`IssueServiceToken`).
    pub service_clients: ServiceClients,
}

pub type Shared = Arc<Context>;
