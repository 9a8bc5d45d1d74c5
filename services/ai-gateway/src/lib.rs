//! The ai-gateway: the one way every AI call on the platform is made. Calls are metered against
//! the tenant's token quota (reserved before the provider call, charged with the real count after
//! it), logged with their cost and published as `ai.usage.recorded`, checked by guardrails, routed
//! over provider deployments with fallback and circuit breakers, and may draw on the tenant's
//! permission-scoped memory.
//!
//! `app::build` wires it on the kernel's platform; `main` only loads config and waits for a
//! signal; tests call the same `build` on port 0.
#![forbid(unsafe_code)]

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod jobs;
pub mod providers;
pub mod repo;
pub mod settings;

pub use app::{MIGRATIONS, build, build_with_clock};
pub use settings::Settings;
