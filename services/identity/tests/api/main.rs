//! Identity through its real gRPC listener, on a real Postgres and NATS. One test binary (one
//! link) with a module per concern; every test starts its own identity on port 0.
#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion

mod support;

mod accounts;
mod api_keys;
mod audit;
mod audit_owner;
mod config;
mod isolation;
mod jwks;
mod login_security;
mod password_reset;
mod privileges;
mod revocation;
mod roles;
mod service_tokens;
mod sessions;
mod tenancy_events;
mod verification_secrets;
mod with_tenancy;
