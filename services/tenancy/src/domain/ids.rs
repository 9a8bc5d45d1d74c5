//! Tenancy's id newtypes (the kernel's `TenantId` and `UserId` cover the rest).

keel_kernel::id_type!(
    /// An invitation to join a tenant.
    InvitationId, "invitation id", v7
);
pub use keel_kernel::ids::RoleId;
