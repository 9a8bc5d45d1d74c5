//! Permission patterns and the built-in role names.
//!
//! A permission is `<context>.<resource>.<action>` (`delivery.orders.read`). A token carries
//! patterns in which any segment may be `*` (`delivery.*.*`, `*.*.read`), or the single pattern
//! `*` that grants everything (the owner of a tenant).
//!
//! Why the kernel checks permissions and never roles: roles are data that identity owns (built-in
//! roles plus custom roles per tenant, changeable at any time). Identity expands a user's roles
//! into `perms` when it issues a token, so every service decides locally from the token alone,
//! with no call to identity and no copy of the role catalogue that could drift. A role change
//! takes effect at the next token refresh; access tokens are short-lived for that reason.

/// Names of the built-in roles every tenant has. Identity expands them into permissions; they are
/// here so that services, tests and the gateway spell them the same way, not for checks.
pub mod roles {
    /// Everything in the tenant, including deleting it and managing owners.
    pub const OWNER: &str = "owner";
    /// Everything except what only an owner may do.
    pub const ADMIN: &str = "admin";
    /// Day-to-day work: read and write the tenant's business data.
    pub const MEMBER: &str = "member";
    /// Read-only access.
    pub const VIEWER: &str = "viewer";

    /// Every built-in role, most powerful first.
    pub const BUILT_IN: [&str; 4] = [OWNER, ADMIN, MEMBER, VIEWER];

    /// Read-only access shared by every built-in role below admin.
    const READ_ONLY: &[&str] = &[
        "tenancy.member.read",
        "identity.role.list",
        "billing.plan.read",
        "delivery.*.read",
        "marketplace.*.read",
        "ai.usage.read",
        // Everyone's own inbox and preferences (notifications).
        "notifications.inbox.*",
        "notifications.preference.*",
    ];

    /// What an admin may do: everything except what only an owner may (deleting the tenant,
    /// managing owners, changing the subscription).
    const ADMIN_PATTERNS: &[&str] = &[
        "identity.*.*",
        "tenancy.member.*",
        "tenancy.invitation.*",
        "tenancy.module.*",
        "tenancy.flag.*",
        "billing.*.read",
        "delivery.*.*",
        "marketplace.*.*",
        "ai.*.*",
        "notifications.*.*",
    ];

    /// A member's day-to-day work, on top of [`READ_ONLY`].
    const MEMBER_EXTRA: &[&str] = &[
        "delivery.*.*",
        "marketplace.*.*",
        "ai.completion.create",
        "ai.memory.*",
    ];

    /// The permission patterns a built-in role grants, or `None` for any other name (a custom
    /// role, whose permissions identity stores). Patterns, not a list of names, so a new
    /// permission is covered without a data migration. Identity expands them into tokens; tests
    /// of every service read them from here instead of keeping a copy.
    pub fn built_in(role: &str) -> Option<Vec<&'static str>> {
        match role {
            OWNER => Some(vec![super::ALL_PERMISSIONS]),
            ADMIN => Some(ADMIN_PATTERNS.to_vec()),
            MEMBER => Some(READ_ONLY.iter().chain(MEMBER_EXTRA).copied().collect()),
            VIEWER => Some(READ_ONLY.to_vec()),
            _ => None,
        }
    }

    /// The role of the platform's own administrators. Its rights count only on tokens scoped to
    /// no tenant (tenancy's platform checks), and no tenant role can grant them.
    pub const PLATFORM_ADMIN: &str = "platform_admin";

    /// What [`PLATFORM_ADMIN`] grants.
    pub const PLATFORM_PERMISSIONS: &[&str] = &[
        "tenancy.tenant.approve",
        "tenancy.tenant.suspend",
        "tenancy.tenant.reactivate",
        "tenancy.tenant.read",
        // The global plan catalogue and invoices of any tenant (billing).
        "billing.plan.create",
        "billing.invoice.void",
        "billing.subscription.read",
        "billing.invoice.read",
        "billing.usage.read",
        // The admin port's dead-letter endpoints (`admin::OPERATOR_PERMISSION`).
        "platform.dead_letter.manage",
    ];
}

/// The pattern that grants every permission.
pub const ALL_PERMISSIONS: &str = "*";

/// Whether the granted `pattern` covers the required permission `perm`.
///
/// Segments are compared one by one and must be as many on both sides: `delivery.*` does not
/// cover `delivery.orders.read`, so a typo in a catalogue entry cannot silently widen a grant.
/// Only the pattern may hold wildcards; a `*` in `perm` is an ordinary character, so asking for
/// `delivery.*.read` is matched literally and cannot be used to probe for broad grants. Empty
/// segments never match.
pub fn permission_matches(pattern: &str, perm: &str) -> bool {
    if perm.is_empty() || perm.split('.').any(str::is_empty) {
        return false;
    }
    if pattern == ALL_PERMISSIONS {
        return true;
    }
    let mut granted = pattern.split('.');
    let mut wanted = perm.split('.');
    loop {
        match (granted.next(), wanted.next()) {
            (None, None) => return true,
            (Some(g), Some(w)) if !g.is_empty() && (g == "*" || g == w) => continue,
            _ => return false,
        }
    }
}

/// Whether any of `patterns` covers `perm`.
pub fn any_matches<S: AsRef<str>>(patterns: &[S], perm: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| permission_matches(pattern.as_ref(), perm))
}
