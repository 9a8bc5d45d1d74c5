//! The permissions delivery checks, named once (tenant rights, on a token scoped to the tenant).
//! Identity's catalogue lists them; built-in roles grant them by pattern (`delivery.*.*`).

pub const PROJECT_READ: &str = "delivery.project.read";
pub const PROJECT_CREATE: &str = "delivery.project.create";
pub const PROJECT_UPDATE: &str = "delivery.project.update";
pub const PROJECT_DELETE: &str = "delivery.project.delete";
pub const TASK_READ: &str = "delivery.task.read";
pub const TASK_CREATE: &str = "delivery.task.create";
pub const TASK_UPDATE: &str = "delivery.task.update";
pub const TASK_ASSIGN: &str = "delivery.task.assign";
/// Approving and rejecting submitted work (never one's own).
pub const TASK_APPROVE: &str = "delivery.task.approve";
pub const TASK_DELETE: &str = "delivery.task.delete";
pub const COMMENT_READ: &str = "delivery.comment.read";
pub const COMMENT_CREATE: &str = "delivery.comment.create";
