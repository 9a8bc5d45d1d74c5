//! Identity's own id newtypes (the kernel has `UserId` and `TenantId`), from the kernel's macro.

keel_kernel::id_type!(
    /// A login session: the `sid` claim, and one refresh-token family.
    SessionId, "session id", v7
);
pub use keel_kernel::ids::RoleId;
keel_kernel::id_type!(
    /// An API key. Random (v4), not time-ordered: its hex is part of the secret and the prefix,
    /// and should tell nothing about when the key was made.
    ApiKeyId, "API key id", v4
);
keel_kernel::id_type!(
    /// An entry of an audit log. Time-ordered (v7): the log lists newest first by id.
    AuditEventId, "audit event id", v7
);
