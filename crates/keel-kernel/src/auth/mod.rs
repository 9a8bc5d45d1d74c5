//! Authentication and authorisation: verified JWT claims, the verifier, the tower layer that puts
//! the claims into every request, and the permission check handlers call.
//!
//! The flow on every service: [`AuthLayer`] reads `authorization: Bearer <jwt>`, [`JwtVerifier`]
//! checks it against identity's JWKS, the [`Claims`] land in the request extensions, and a handler
//! does `auth::claims(&request)?.require("delivery.orders.write")?` and `claims.tenant()?`. The
//! tenant therefore always comes from a verified token, never from a client-supplied field.
//!
//! A method whose proto declares one fixed permission (`option (keel.v1.access) = { permission:
//! "..." }`, see [`crate::contract`]) needs no `require` in its handler: the layer refuses a
//! caller without it before the handler runs. Methods the proto declares public need no token.

mod jwk;
mod jwks;
mod layer;
mod permissions;
mod verifier;

pub use jsonwebtoken::jwk::{Jwk, JwkSet};
pub use jwk::ed25519_jwk;
pub use layer::{AuthLayer, AuthService, PublicPaths};
pub use permissions::{ALL_PERMISSIONS, any_matches, permission_matches, roles};
pub use verifier::JwtVerifier;

use crate::error::Error;
use crate::ids::{TenantId, UserId};

/// Who a token was issued to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A human who logged in; `sub` is their [`UserId`].
    #[default]
    User,
    /// A tenant's API key, exchanged for a token at the gateway; `sub` is the key's id and
    /// `scopes` limit what it may do.
    ApiKey,
    /// Another service of the mesh acting on its own behalf; `sub` is the service name.
    Service,
}

/// Verified token claims. `tid` is present only on tenant-scoped tokens.
///
/// `perms` are the permission patterns identity expanded from the principal's roles in `tid` at
/// issue time (the `permissions` module says why the kernel never decides anything from `roles`);
/// `roles` travel for display and audit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    pub sub: String,
    /// Absent in old or hand-made tokens: such a principal is a user, which grants nothing by
    /// itself (rights come from `perms` alone).
    #[serde(default)]
    pub kind: PrincipalKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<TenantId>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub perms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// User tokens: the user's email (as registered) and whether it is verified. Services that
    /// bind something to an address (an invitation) compare against this, never a client field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub email_verified: bool,
    /// API keys only: permission patterns the key was limited to when it was created.
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
        self.tid
            .ok_or_else(|| Error::forbidden("this call needs a tenant-scoped token"))
    }

    /// The calling user, or AUTHZ for API keys and services (which act for no user).
    pub fn user_id(&self) -> Result<UserId, Error> {
        if self.kind != PrincipalKind::User {
            return Err(Error::forbidden("this call needs a user token"));
        }
        self.sub
            .parse()
            .map_err(|_| Error::unauthenticated("token subject is not a user id"))
    }

    /// Whether this token grants `permission` (`<context>.<resource>.<action>`).
    ///
    /// A `perms` pattern must cover it; for an API key a `scopes` pattern must cover it too, so
    /// scopes can only narrow what a key may do, and a key with no scopes may do nothing.
    pub fn has_permission(&self, permission: &str) -> bool {
        permissions::any_matches(&self.perms, permission)
            && (self.kind != PrincipalKind::ApiKey
                || permissions::any_matches(&self.scopes, permission))
    }

    /// AUTHZ naming the missing permission unless this token grants it.
    pub fn require(&self, permission: &str) -> Result<(), Error> {
        if self.has_permission(permission) {
            Ok(())
        } else {
            Err(Error::forbidden(format!("missing permission {permission}")))
        }
    }
}

/// The verified claims [`AuthLayer`] put into a tonic request, or AUTHN when there are none (a
/// public method called without a token, or a server built without the layer).
pub fn claims<T>(request: &tonic::Request<T>) -> Result<&Claims, Error> {
    request
        .extensions()
        .get::<Claims>()
        .ok_or_else(|| Error::unauthenticated("missing bearer token"))
}
