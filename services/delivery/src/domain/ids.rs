//! Delivery's id newtypes (the kernel's `TenantId` and `UserId` cover the rest).

keel_kernel::id_type!(
    /// A project.
    ProjectId, "project id", v7
);
keel_kernel::id_type!(
    /// A task.
    TaskId, "task id", v7
);
keel_kernel::id_type!(
    /// A comment on a task.
    CommentId, "comment id", v7
);
keel_kernel::id_type!(
    /// One decision of a task's approval history.
    ApprovalId, "approval id", v7
);
