//! SQL, and only SQL: plain query strings over the caller's transaction, returning domain types
//! (each module converts its own private row structs). Functions on tenant tables take a
//! `&mut TenantTx` and read their tenant from it; functions on global tables take a connection.

pub mod api_keys;
pub mod audit;
pub mod password_resets;
pub mod roles;
pub mod sessions;
pub mod tenancy;
pub mod throttle;
pub mod users;
pub mod verifications;
