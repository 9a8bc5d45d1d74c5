//! The gateway through its real HTTP listener to a real tonic server. One test binary (one link)
//! with a module per concern; every test starts its own upstream, issuer and gateway on port 0.

mod support;

mod auth;
mod backpressure;
mod edge;
mod errors;
mod grpc;
mod limits;
mod openapi;
mod protocols;
mod raw_routes;
mod security;
mod streaming;
mod transcoding;
