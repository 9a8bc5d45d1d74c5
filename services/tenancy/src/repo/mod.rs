//! SQL, and only SQL. Every function runs in the caller's transaction and returns domain types:
//! rows are private structs converted here, so no column shape leaks out.
//!
//! - Functions on tenant tables (memberships, invitations, tenant_modules, feature_flags) take
//!   `&mut TenantTx` and nothing else to name the tenant: they read it from the transaction, so
//!   row-level security and the `WHERE tenant_id` always agree.
//! - Functions on the tenant registry that act on one tenant take `&mut TenantTx` too (the tenant
//!   is the transaction's); lists across tenants and the module catalogue take a plain connection.
//! - A unique violation is reworded in domain terms with `Error::on_constraint`, so no constraint
//!   name reaches a client.

pub mod invitations;
pub mod members;
pub mod modules;
pub mod tenants;
