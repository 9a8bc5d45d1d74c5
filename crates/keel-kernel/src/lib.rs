//! The platform kernel: everything every service needs, written once.
//!
//! A service crate holds only its domain (handlers, domain types, SQL, migrations, event
//! handlers); configuration, telemetry, errors, authentication, tenant-scoped transactions, the
//! transactional outbox, idempotent consumers, durable jobs, idempotent requests, the clock and the server bootstrap live here.
#![forbid(unsafe_code)]

pub mod actor;
pub mod admin;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod contract;
pub mod db;
pub mod email;
pub mod error;
pub mod grpc;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod metrics;
pub mod money;
pub mod nats;
pub mod outbox;
pub mod search;
pub mod server;
pub mod service_client;
pub mod telemetry;
pub mod tenant;

pub use actor::{Actor, ActorKind};
pub use auth::{AuthLayer, Claims, JwtVerifier};
pub use email::Email;
pub use error::{Error, ErrorCode, FieldViolation, Result};
pub use grpc::{Caller, RequestMeta, Violations};
pub use ids::{EventId, TenantId, UserId};
pub use service_client::ServiceTokens;
