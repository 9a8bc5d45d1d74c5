//! SQL, and only SQL. Every function runs in the caller's transaction and returns domain types:
//! rows are private structs converted here, so no column shape leaks out.
//!
//! - Functions on tenant tables (subscriptions, usage records, invoices, members) take
//!   `&mut TenantTx` and nothing else to name the tenant: they read it from the transaction, so
//!   row-level security and the `WHERE tenant_id` always agree.
//! - The catalogue (meters, plans, prices), the invoice counters and the webhook events are
//!   global: their functions take a plain connection.
//! - A unique violation is reworded in domain terms with `Error::on_constraint`.

pub mod catalogue;
pub mod invoices;
pub mod subscriptions;
pub mod tenants;
pub mod usage;
pub mod webhooks;
