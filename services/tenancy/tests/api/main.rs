//! Tenancy's API tests: one binary (one link on a 2-core machine), one module per proto service
//! or concern. Each test starts the real service on port 0 against its own database and NATS.

mod billing_events;
mod events;
mod invitations;
mod isolation;
mod locale;
mod members;
mod modules;
mod support;
mod tenants;
