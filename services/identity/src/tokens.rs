//! Minting access tokens: the claims every service's verifier expects, signed by the key ring.

use std::sync::Arc;

use chrono::Utc;
use keel_kernel::auth::{Claims, PrincipalKind};
use keel_kernel::{Error, TenantId};

use crate::domain::{ApiKeyId, SessionId, User};
use crate::keys::KeyRing;

/// What a signed access token says, and for how long.
pub struct AccessToken {
    pub token: String,
    pub expires_in: i64,
}

/// Issues access tokens for one issuer and audience.
#[derive(Clone)]
pub struct TokenIssuer {
    keys: Arc<KeyRing>,
    issuer: String,
    audience: String,
    access_ttl: i64,
    api_key_ttl: i64,
    service_ttl: i64,
}

/// A user's rights in the token's tenant: role names for display and audit, and the permission
/// patterns they expand to, which are what services check.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub roles: Vec<String>,
    pub perms: Vec<String>,
}

impl TokenIssuer {
    pub fn new(
        keys: Arc<KeyRing>,
        issuer: &str,
        audience: &str,
        access_ttl: u64,
        api_key_ttl: u64,
        service_ttl: u64,
    ) -> Self {
        TokenIssuer {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            access_ttl: access_ttl as i64,
            api_key_ttl: api_key_ttl as i64,
            service_ttl: service_ttl as i64,
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn access_ttl(&self) -> i64 {
        self.access_ttl
    }

    pub fn api_key_ttl(&self) -> i64 {
        self.api_key_ttl
    }

    /// A user's token: unscoped (`tenant` = None, no rights) or scoped to a tenant with `grants`.
    /// It carries the user's email and whether it is verified, for services that bind something
    /// to an address (an invitation).
    pub fn user_token(
        &self,
        user: &User,
        session: SessionId,
        tenant: Option<TenantId>,
        grants: Grants,
    ) -> Result<AccessToken, Error> {
        let mut claims = self.claims(
            user.id.to_string(),
            PrincipalKind::User,
            tenant,
            grants,
            Some(session),
            self.access_ttl,
        );
        claims.email = Some(user.email.clone());
        claims.email_verified = user.email_verified;
        Ok(AccessToken {
            token: self.keys.sign(&claims)?,
            expires_in: self.access_ttl,
        })
    }

    /// An API key's token: `sub` = `apikey:<id>`, kind api_key, its scopes as both `perms` and
    /// `scopes` (the kernel requires both to cover a permission).
    pub fn api_key_token(
        &self,
        key: ApiKeyId,
        tenant: TenantId,
        scopes: &[String],
    ) -> Result<AccessToken, Error> {
        let grants = Grants {
            roles: Vec::new(),
            perms: scopes.to_vec(),
        };
        let mut claims = self.claims(
            format!("apikey:{key}"),
            PrincipalKind::ApiKey,
            Some(tenant),
            grants,
            None,
            self.api_key_ttl,
        );
        claims.scopes = scopes.to_vec();
        Ok(AccessToken {
            token: self.keys.sign(&claims)?,
            expires_in: self.api_key_ttl,
        })
    }

    /// A service's token: `sub` = the client id, kind service, no tenant, `permissions` as perms.
    pub fn service_token(
        &self,
        client_id: &str,
        permissions: &[String],
    ) -> Result<AccessToken, Error> {
        let grants = Grants {
            roles: Vec::new(),
            perms: permissions.to_vec(),
        };
        let claims = self.claims(
            client_id.to_owned(),
            PrincipalKind::Service,
            None,
            grants,
            None,
            self.service_ttl,
        );
        Ok(AccessToken {
            token: self.keys.sign(&claims)?,
            expires_in: self.service_ttl,
        })
    }

    fn claims(
        &self,
        sub: String,
        kind: PrincipalKind,
        tenant: Option<TenantId>,
        grants: Grants,
        session: Option<SessionId>,
        ttl: i64,
    ) -> Claims {
        let now = Utc::now().timestamp();
        Claims {
            sub,
            kind,
            tid: tenant,
            roles: grants.roles,
            perms: grants.perms,
            sid: session.map(|s| s.to_string()),
            scopes: Vec::new(),
            email: None,
            email_verified: false,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl,
            iat: now,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }
}
