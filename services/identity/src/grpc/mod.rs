//! The gRPC surface: proto requests become domain values here (rejected with field violations
//! when they cannot), handlers run the use case, and domain values become proto responses.

/// Run a handler body and turn its error into the client's status (logging its cause, once).
macro_rules! respond {
    ($state:expr, $body:expr) => {
        match $body.await {
            Ok(value) => Ok(tonic::Response::new(value)),
            Err(err) => Err($state.status(err)),
        }
    };
}

pub mod access;
pub mod auth;
pub mod context;
pub mod convert;
pub mod paging;
pub mod sessions;
pub mod users;

use std::sync::Arc;

use keel_kernel::Error;
use keel_kernel::outbox::Outbox;
use sqlx::PgPool;

use crate::domain::PasswordHasherConfig;
use crate::settings::IdentitySettings;
use crate::tokens::TokenIssuer;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct State {
    pub db: PgPool,
    pub outbox: Outbox,
    pub tokens: TokenIssuer,
    pub hasher: PasswordHasherConfig,
    pub settings: Arc<IdentitySettings>,
    /// A hash of a random password, verified against when the email is unknown, so that a login
    /// for a missing account takes as long as one with a wrong password.
    pub dummy_hash: Arc<str>,
    /// The error domain (the service name).
    pub service: Arc<str>,
}

impl State {
    /// A platform error as the status the client sees (causes are logged here, once).
    pub fn status(&self, err: Error) -> tonic::Status {
        err.into_status_in(&self.service)
    }
}

/// The names of the methods callable without a token.
pub const PUBLIC_METHODS: &[&str] = &[
    "/identity.v1.AuthService/Register",
    "/identity.v1.AuthService/Login",
    "/identity.v1.AuthService/Refresh",
    "/identity.v1.AuthService/VerifyEmail",
    "/identity.v1.AuthService/GetJwks",
    // The secret is the credential; the gateway has no token of its own to present.
    "/identity.v1.AuthService/ExchangeApiKey",
];
