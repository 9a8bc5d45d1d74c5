//! SQL, and only SQL. Every function runs in the caller's `&mut TenantTx` (the tenant comes from
//! the transaction, so row-level security and the `WHERE tenant_id` always agree) and returns
//! domain types: rows are private structs converted here.
//!
//! Stock is reserved by one conditional UPDATE (`listings::reserve`): Postgres re-checks
//! `quantity_available >= n` on the newest row version after waiting for a concurrent reserver,
//! so concurrent orders can never take more than there is, without a lock held across the
//! request.

pub mod disputes;
pub mod listings;
pub mod offers;
pub mod orders;
pub mod plans;
