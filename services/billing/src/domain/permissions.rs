//! The permissions billing checks, named once. Identity's role catalogue grants them (owners get
//! `*`, admins `billing.*.read`, everyone `billing.plan.read`).
//!
//! - Tenant rights count on a token scoped to the tenant the request names; the same names held
//!   by a platform principal (a token scoped to no tenant) read any tenant.
//! - Platform rights count only on a token scoped to no tenant.
//! - Service rights count only on a service principal's token.

/// Tenant rights.
pub const PLAN_READ: &str = "billing.plan.read";
pub const SUBSCRIPTION_READ: &str = "billing.subscription.read";
pub const SUBSCRIPTION_UPDATE: &str = "billing.subscription.update";
pub const USAGE_READ: &str = "billing.usage.read";
pub const INVOICE_READ: &str = "billing.invoice.read";

/// Service rights: an owner's `*` covers the name, so the handler checks the principal's kind.
pub const USAGE_RECORD: &str = "billing.usage.record";

/// Platform rights.
pub const PLAN_CREATE: &str = "billing.plan.create";
pub const INVOICE_VOID: &str = "billing.invoice.void";
