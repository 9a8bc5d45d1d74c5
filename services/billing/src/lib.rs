//! The billing service: plans and prices, subscriptions, usage metered from events, invoices
//! closed by durable jobs, billing entitlements, and payment-provider webhooks.
//!
//! `app::build` wires it on the kernel's platform; `main` only loads config and waits for a
//! signal; tests call `app::build_with_clock` on port 0 with a test clock.
#![forbid(unsafe_code)]

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod jobs;
pub mod ops;
pub mod repo;
pub mod settings;

pub use app::{MIGRATIONS, build, build_with_clock};
pub use settings::Settings;
