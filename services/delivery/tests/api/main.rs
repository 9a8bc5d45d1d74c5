//! Delivery's API tests: one binary (one link on a 2-core machine), one module per concern. Each
//! test starts the real service on port 0 against its own database and NATS, on a test clock.
#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion

mod comments;
mod isolation;
mod jobs;
mod lists;
mod members;
mod projects;
mod support;
mod watch;
mod workflow;
