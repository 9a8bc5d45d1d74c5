//! SQL, and only SQL. Every function takes the caller's `&mut TenantTx` (the tenant comes from
//! the transaction, so row-level security and the `WHERE tenant_id` always agree) and returns
//! domain types: rows are private structs converted here.
//!
//! Soft-deleted projects and tasks are invisible to every read here; only the purge job sees
//! them. Changes a rule depends on lock one row first (`lock`: `SELECT ... FOR UPDATE`).

pub mod approvals;
pub mod changes;
pub mod comments;
pub mod members;
pub mod projects;
pub mod tasks;
