//! The identity service: users, credentials, sessions, tokens and signing keys (JWKS), roles and
//! permissions, API keys, and the audit log. Tenancy's events keep its role bindings.
#![forbid(unsafe_code)]

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod keys;
pub mod repo;
pub mod settings;
pub mod tokens;
