//! What identity keeps of tenancy's facts: a tenant's lifecycle state.

pub use keel_kernel::tenant::TenantState;
