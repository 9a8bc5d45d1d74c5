//! SQL, and only SQL. Every function takes the caller's `&mut TenantTx` (the tenant comes from
//! the transaction, so row-level security and the `WHERE tenant_id` always agree) and returns
//! domain types: rows are private structs converted here.

pub mod digests;
pub mod notifications;
pub mod preferences;
pub mod subjects;
pub mod tenants;
