//! The notifications service: every context's events become notifications for the people they
//! concern (`events/`), routed to the channels each recipient's preferences allow (`ops::route`):
//! the in-app inbox (with a resumable live stream), email over SMTP rendered with Project Fluent
//! in the recipient's language (`render`, `mail`, sent by durable jobs in `jobs.rs`), and the
//! tenant's outbound webhooks (`webhooks/`).
//!
//! `app::build` wires it on the kernel's platform; `main` only loads config and waits for a
//! signal; tests call `app::build_with_clock` on port 0 with a test clock.
#![forbid(unsafe_code)]

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod jobs;
pub mod mail;
pub mod ops;
pub mod peers;
pub mod render;
pub mod repo;
pub mod settings;
pub mod webhooks;

pub use app::{MIGRATIONS, build, build_with_clock};
pub use settings::Settings;
