//! The marketplace service: within a tenant, sellers publish listings, buyers order them (never
//! twice for one idempotency key, never beyond the stock) or negotiate with offers and
//! counter-offers, and disputes on fulfilled orders are settled by an operator.
//!
//! `app::build` wires it on the kernel's platform; `main` only loads config and waits for a
//! signal; tests call `app::build_with_clock` on port 0 with a test clock.
#![forbid(unsafe_code)]

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod jobs;
pub mod repo;
pub mod settings;

pub use app::{MIGRATIONS, build, build_with_clock};
pub use settings::Settings;
