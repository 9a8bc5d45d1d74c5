//! The permissions the ai-gateway checks, named once. All are tenant rights (on a token scoped
//! to the tenant the request names); identity's catalogue and the built-in roles grant them.

/// Complete and StreamComplete.
pub const COMPLETION_CREATE: &str = "ai.completion.create";
/// PutMemory and DeleteMemory.
pub const MEMORY_WRITE: &str = "ai.memory.write";
/// SearchMemories.
pub const MEMORY_READ: &str = "ai.memory.read";
/// GetQuota and ListUsage.
pub const USAGE_READ: &str = "ai.usage.read";
