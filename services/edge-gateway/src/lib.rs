//! The edge gateway: REST/JSON in front of the gRPC mesh, generic over the proto descriptors.
//!
//! Every method with a `google.api.http` annotation in a service the route table names is
//! reachable, with no code per route: [`router`] compiles the bindings, [`transcode`] turns HTTP
//! into the request message and the reply into ProtoJSON, [`upstream`] calls the service through
//! a [`codec::DynamicCodec`]. Around that: authentication ([`auth`]), tenant and entitlement
//! checks, GCRA rate limits ([`ratelimit`]), RFC 7807 errors ([`problem`]), CORS and security
//! headers, and OpenAPI 3.1 generated from the same descriptors ([`openapi`], [`docs`]).
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod codec;
pub mod compression;
pub mod config;
pub mod cors;
pub mod descriptors;
pub mod docs;
pub mod endpoints;
pub mod entitlements;
pub mod gateway;
pub mod grpc;
pub mod headers;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod preflight;
pub mod problem;
pub mod ratelimit;
pub mod revocation;
pub mod router;
pub mod serve;
pub mod stream;
pub mod template;
pub mod tls;
pub mod transcode;
pub mod upstream;

pub use app::{Application, StartError};
pub use codec::DynamicCodec;
pub use config::{GatewayConfig, Loaded, RouteTable};
