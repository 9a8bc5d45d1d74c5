//! A tenant's custom roles and API keys.

use chrono::{DateTime, Utc};
use keel_kernel::TenantId;

use super::{ApiKeyId, RoleId};

#[derive(Debug, Clone)]
pub struct CustomRole {
    pub tenant_id: TenantId,
    pub id: RoleId,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub tenant_id: TenantId,
    pub id: ApiKeyId,
    pub name: String,
    /// The public start of the secret, shown so people can tell keys apart.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The `sub` of the principal that created it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}
