//! Tenancy's id newtypes (the kernel's `TenantId` and `UserId` cover the rest).

keel_kernel::id_type!(
    /// An invitation to join a tenant.
    InvitationId, "invitation id", v7
);
keel_kernel::id_type!(
    /// A tenant's custom role. Identity mints and owns these (its own `RoleId`); tenancy only
    /// records which one a member holds.
    RoleId, "role id", v7
);
