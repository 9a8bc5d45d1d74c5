//! JWT verification and the request's verified identity. (Interface stub: being implemented.)

use crate::error::Error;
use crate::ids::TenantId;

/// Verified token claims. `tid` is present only on tenant-scoped tokens.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<TenantId>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
}

impl Claims {
    /// The tenant this token acts for, or AUTHZ if it is not tenant-scoped.
    pub fn tenant(&self) -> Result<TenantId, Error> {
        self.tid.ok_or_else(|| Error::forbidden("this call needs a tenant-scoped token"))
    }
}
