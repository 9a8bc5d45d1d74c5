//! Test kit: real Postgres and NATS for every test, each test on its own database and broker,
//! plus the assertions and readers every service's tests share.
#![forbid(unsafe_code)]

pub mod assert;
pub mod events;
pub mod fake_llm;
pub mod grpc;
pub mod smtp;
pub mod stack;
pub mod tokens;

pub use assert::{assert_status, eventually, violated_fields};
pub use events::{EventLog, payload};
pub use grpc::Bearer;
pub use stack::{TestDatabase, TestNats};
