//! The audit trail: what was done, by whom, to what, from where. Action names are constants so
//! that a query for one finds every place that writes it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use keel_kernel::grpc::RequestMeta;
use keel_kernel::{Actor, Caller, TenantId};

use super::AuditEventId;

pub mod actions {
    pub const USER_REGISTER: &str = "identity.user.register";
    pub const USER_UPDATE: &str = "identity.user.update";
    pub const USER_VERIFY_EMAIL: &str = "identity.user.verify_email";
    pub const USER_REQUEST_VERIFICATION: &str = "identity.user.request_verification";
    pub const USER_CHANGE_PASSWORD: &str = "identity.user.change_password";
    pub const USER_REQUEST_PASSWORD_RESET: &str = "identity.user.request_password_reset";
    pub const USER_RESET_PASSWORD: &str = "identity.user.reset_password";
    pub const SESSION_CREATE: &str = "identity.session.create";
    pub const SESSION_SWITCH_TENANT: &str = "identity.session.switch_tenant";
    pub const SESSION_REVOKE: &str = "identity.session.revoke";
    pub const ROLE_CREATE: &str = "identity.role.create";
    pub const API_KEY_CREATE: &str = "identity.api_key.create";
    pub const API_KEY_DELETE: &str = "identity.api_key.delete";
}

/// The kinds of things an audit entry targets.
pub mod targets {
    pub const USER: &str = "user";
    pub const SESSION: &str = "session";
    pub const ROLE: &str = "role";
    pub const API_KEY: &str = "api_key";
}

/// One audited mutation, about to be written.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: Actor,
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: String,
    pub request_id: String,
    pub ip_address: String,
    pub metadata: HashMap<String, String>,
}

impl AuditEntry {
    /// `actor` did `action` to `target_type` `target_id`, in the request `meta` describes.
    pub fn new(
        actor: Actor,
        meta: &RequestMeta,
        action: &'static str,
        target_type: &'static str,
        target_id: impl ToString,
    ) -> AuditEntry {
        AuditEntry {
            actor,
            action,
            target_type,
            target_id: target_id.to_string(),
            request_id: meta.request_id.clone(),
            ip_address: meta.client_ip.clone(),
            metadata: HashMap::new(),
        }
    }

    /// The verified `caller` did `action` to `target_type` `target_id`.
    pub fn by(
        caller: &Caller,
        action: &'static str,
        target_type: &'static str,
        target_id: impl ToString,
    ) -> AuditEntry {
        AuditEntry::new(caller.actor(), &caller.meta, action, target_type, target_id)
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> AuditEntry {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }
}

/// A recorded entry of a tenant's audit log.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub tenant_id: TenantId,
    pub id: AuditEventId,
    pub actor: Actor,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub request_id: String,
    pub ip_address: String,
    pub metadata: HashMap<String, String>,
    pub created_at: DateTime<Utc>,
}
