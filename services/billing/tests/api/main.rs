//! Billing's API tests: one binary (one link on a 2-core machine), one module per concern. Each
//! test starts the real service on port 0 against its own database and NATS, on a test clock.
#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion

mod catalogue;
mod events;
mod invoices;
mod isolation;
mod subscriptions;
mod support;
mod usage;
mod webhooks;
mod with_tenancy;
