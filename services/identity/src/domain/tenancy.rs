//! What identity keeps of tenancy's facts: a tenant's lifecycle state.

/// Tenant lifecycle states, as stored (a text column with a CHECK constraint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum TenantState {
    PendingApproval,
    Active,
    Suspended,
    Deleted,
}
