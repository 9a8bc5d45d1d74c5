//! Events: what identity publishes (through the outbox, in the caller's transaction) and the
//! tenancy events it consumes.

pub mod publish;
pub mod tenancy;
