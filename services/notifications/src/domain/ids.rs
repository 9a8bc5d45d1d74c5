//! Notifications' id newtypes (the kernel's `TenantId` and `UserId` cover the rest).

keel_kernel::id_type!(
    /// One notification in one user's inbox.
    NotificationId, "notification id", v7
);
