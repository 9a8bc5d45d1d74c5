//! The tenancy service: tenants and their lifecycle, memberships and invitations, the module
//! registry, feature flags, and the entitlements query the gateway and other services use.
//!
//! `app::build` wires it on the kernel's platform; `main` only loads config and waits for a
//! signal; tests call the same `build` on port 0.
#![forbid(unsafe_code)]

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod repo;
pub mod settings;

pub use app::{MIGRATIONS, build};
pub use settings::Settings;
