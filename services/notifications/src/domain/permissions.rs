//! The permissions notifications checks, named once (tenant rights, on a token scoped to the
//! tenant). Every method acts on the caller's own inbox and preferences, so the built-in roles
//! grant the inbox and preference rights to everyone; the tenant's defaults are an admin's.

pub const INBOX_READ: &str = "notifications.inbox.read";
pub const INBOX_UPDATE: &str = "notifications.inbox.update";
pub const PREFERENCE_READ: &str = "notifications.preference.read";
pub const PREFERENCE_UPDATE: &str = "notifications.preference.update";
pub const DEFAULT_MANAGE: &str = "notifications.default.manage";
