//! SQL, and only SQL. Every function runs in the caller's transaction and returns domain types:
//! rows are private structs converted here.
//!
//! Every table is a tenant table: functions take `&mut TenantTx` and read the tenant from it, so
//! row-level security and the `WHERE tenant_id` always agree.

pub mod memories;
pub mod quotas;
pub mod usage;
