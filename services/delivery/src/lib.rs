//! The delivery service: projects, tasks moved through an approval workflow (one table in
//! `domain::workflow`), comments, the append-only approval history, due-date and approval-SLA
//! jobs, a projection of the tenant's members from tenancy's events, and a resumable live stream
//! of each project's task changes.
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
