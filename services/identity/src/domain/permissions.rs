//! The permission catalogue (`<context>.<resource>.<action>`) and the built-in roles.
//!
//! The catalogue lives in code, versioned with the services that check it; custom roles and API
//! key scopes may only use its entries. Built-in roles are patterns (the kernel's wildcard rules),
//! so a new catalogue entry is covered by them without a data migration.

use keel_kernel::auth::{any_matches, roles};

/// The permissions identity's own methods check.
pub const ROLE_LIST: &str = "identity.role.list";
pub const ROLE_CREATE: &str = "identity.role.create";
pub const API_KEY_LIST: &str = "identity.api_key.list";
pub const API_KEY_CREATE: &str = "identity.api_key.create";
pub const API_KEY_DELETE: &str = "identity.api_key.delete";
pub const AUDIT_EVENT_LIST: &str = "identity.audit_event.list";
/// Issuing a fresh email-verification token (the notifier's call).
pub const VERIFICATION_ISSUE: &str = "identity.verification.issue";
/// Issuing a password-reset token for a pending reset (the notifier's call).
pub const PASSWORD_RESET_ISSUE: &str = "identity.password_reset.issue";
/// Reading any user by id (`GetUser`), for services.
pub const USER_READ: &str = "identity.user.read";

/// Permissions only other services of the mesh hold, on their own service tokens. They are not in
/// the catalogue, so no role or API key can carry them.
pub const SERVICE_ONLY: &[(&str, &str)] = &[
    (
        VERIFICATION_ISSUE,
        "Issue email-verification tokens for delivery",
    ),
    (
        PASSWORD_RESET_ISSUE,
        "Issue password-reset tokens for delivery",
    ),
    (USER_READ, "Read any user's profile by id"),
    (
        "tenancy.invitation_token.issue",
        "Issue invitation tokens for delivery (tenancy)",
    ),
    (
        "billing.usage.record",
        "Record metered usage synchronously (billing)",
    ),
];

/// Every permission a role or API key can grant, with what it allows.
pub const CATALOGUE: &[(&str, &str)] = &[
    // identity
    (ROLE_LIST, "List the tenant's roles"),
    (ROLE_CREATE, "Create custom roles"),
    (API_KEY_LIST, "List the tenant's API keys"),
    (API_KEY_CREATE, "Create API keys"),
    (API_KEY_DELETE, "Revoke API keys"),
    (AUDIT_EVENT_LIST, "Read the tenant's audit log"),
    // tenancy (the names tenancy's handlers check)
    ("tenancy.tenant.delete", "Delete the tenant"),
    (
        "tenancy.tenant.update",
        "Rename the tenant and set its default language",
    ),
    ("tenancy.member.read", "List members"),
    ("tenancy.member.update", "Change a member's role"),
    ("tenancy.member.remove", "Remove a member"),
    ("tenancy.invitation.create", "Invite people"),
    ("tenancy.module.manage", "Enable and disable modules"),
    ("tenancy.flag.manage", "Override feature flags"),
    // billing
    ("billing.plan.read", "Read plans and prices"),
    ("billing.subscription.read", "Read the subscription"),
    ("billing.subscription.update", "Change the subscription"),
    ("billing.invoice.read", "Read invoices"),
    ("billing.usage.read", "Read usage meters"),
    // delivery
    ("delivery.project.read", "Read projects"),
    ("delivery.project.create", "Create projects"),
    ("delivery.project.update", "Change projects"),
    ("delivery.project.delete", "Delete projects"),
    ("delivery.task.read", "Read tasks"),
    ("delivery.task.create", "Create tasks"),
    ("delivery.task.update", "Change tasks"),
    ("delivery.task.assign", "Assign tasks"),
    ("delivery.task.approve", "Approve or reject tasks"),
    ("delivery.task.delete", "Delete tasks"),
    ("delivery.comment.read", "Read comments"),
    ("delivery.comment.create", "Comment"),
    // marketplace
    ("marketplace.listing.read", "Read listings"),
    ("marketplace.listing.create", "Create listings"),
    ("marketplace.listing.update", "Change listings"),
    ("marketplace.offer.read", "Read offers"),
    ("marketplace.offer.create", "Make offers"),
    ("marketplace.order.read", "Read orders"),
    ("marketplace.order.create", "Place orders"),
    ("marketplace.order.update", "Change orders"),
    (
        "marketplace.order.read_all",
        "Read every buyer's orders and offers",
    ),
    ("marketplace.dispute.read", "Read disputes"),
    ("marketplace.dispute.create", "Open disputes"),
    ("marketplace.dispute.resolve", "Resolve disputes"),
    // ai
    ("ai.completion.create", "Call models through the AI gateway"),
    ("ai.usage.read", "Read AI usage"),
    ("ai.memory.read", "Read tenant memory"),
    ("ai.memory.write", "Write tenant memory"),
    // notifications (every method acts on the caller's own inbox and preferences)
    ("notifications.inbox.read", "Read one's own notifications"),
    (
        "notifications.inbox.update",
        "Mark one's own notifications read",
    ),
    (
        "notifications.preference.read",
        "Read one's own notification preferences and the tenant's defaults",
    ),
    (
        "notifications.preference.update",
        "Change one's own notification preferences",
    ),
    (
        "notifications.default.manage",
        "Change the tenant's default notification preferences",
    ),
    (
        "notifications.webhook.manage",
        "Manage the tenant's outbound webhook endpoints, their delivery log and replays",
    ),
];

/// Platform rights, granted on unscoped tokens to the platform admins named in the config, and
/// never through a tenant role (tenancy honours them only on tokens without a tenant).
pub const PLATFORM_ADMIN_ROLE: &str = roles::PLATFORM_ADMIN;
pub const PLATFORM: &[&str] = roles::PLATFORM_PERMISSIONS;

/// Whether `name` is a catalogue permission.
pub fn is_known(name: &str) -> bool {
    CATALOGUE.iter().any(|(known, _)| *known == name)
}

/// Whether `name` is a permission only service principals hold.
pub fn is_service_only(name: &str) -> bool {
    SERVICE_ONLY.iter().any(|(known, _)| *known == name)
}

/// The permission patterns of a built-in role, or `None` for any other name.
pub fn built_in(role: &str) -> Option<Vec<String>> {
    roles::built_in(role).map(|patterns| patterns.into_iter().map(str::to_owned).collect())
}

pub fn built_in_description(role: &str) -> &'static str {
    match role {
        roles::OWNER => "Everything in the tenant, including deleting it",
        roles::ADMIN => "Everything except what only an owner may do",
        roles::MEMBER => "Day-to-day work on the tenant's business data",
        roles::VIEWER => "Read-only access",
        _ => "",
    }
}

/// The catalogue entries the granted patterns cover: what a built-in role means in full.
pub fn expand(patterns: &[String]) -> Vec<String> {
    CATALOGUE
        .iter()
        .filter(|(name, _)| any_matches(patterns, name))
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_the_protos_declare_is_in_the_catalogue() {
        for permission in keel_kernel::contract::permissions() {
            assert!(
                is_known(permission) || is_service_only(permission),
                "{permission} is declared in a proto but not catalogued"
            );
        }
    }

    #[test]
    fn service_only_permissions_are_not_in_the_catalogue() {
        for (name, _) in SERVICE_ONLY {
            assert!(!is_known(name), "{name} could be granted by a role");
        }
    }

    #[test]
    fn every_catalogue_name_has_three_segments() {
        for (name, _) in CATALOGUE.iter().chain(SERVICE_ONLY) {
            assert_eq!(name.split('.').count(), 3, "{name}");
        }
    }

    #[test]
    fn built_in_roles_are_nested() {
        let viewer = built_in("viewer").expect("viewer");
        let member = built_in("member").expect("member");
        let admin = built_in("admin").expect("admin");
        for perm in expand(&viewer) {
            assert!(any_matches(&member, &perm), "member lacks {perm}");
        }
        for perm in expand(&member) {
            assert!(any_matches(&admin, &perm), "admin lacks {perm}");
        }
        assert!(!any_matches(&admin, "tenancy.tenant.delete"));
        assert!(any_matches(
            &built_in("owner").expect("owner"),
            "tenancy.tenant.delete"
        ));
    }

    #[test]
    fn viewers_cannot_manage_api_keys() {
        assert!(!any_matches(
            &built_in("viewer").expect("viewer"),
            API_KEY_CREATE
        ));
    }
}
