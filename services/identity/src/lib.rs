//! The identity service: users, credentials, sessions, tokens and signing keys (JWKS), roles and
//! permissions, API keys, and the audit log. Tenancy's events keep its role bindings.
//!
//! `app::build` wires it on the kernel's platform; `main` only loads config and waits for a
//! signal; tests call the same `build` on port 0.
#![forbid(unsafe_code)]

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod keys;
pub mod preflight;
pub mod repo;
pub mod settings;
pub mod tokens;

pub use app::{JWKS_PATH, MIGRATIONS, build};
pub use settings::IdentitySettings as Settings;
