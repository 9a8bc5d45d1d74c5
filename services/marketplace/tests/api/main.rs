//! Marketplace's API tests: one binary (one link on a 2-core machine), one module per concern.
//! Each test starts the real service on port 0 against its own database and NATS, on a test
//! clock.
#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion

mod disputes;
mod events;
mod isolation;
mod listings;
mod offers;
mod orders;
mod support;
mod transitions;
