//! Test kit: real Postgres and NATS for every test, each test on its own database and broker.
#![forbid(unsafe_code)]

pub mod stack;
pub mod tokens;

pub use stack::{TestDatabase, TestNats};
