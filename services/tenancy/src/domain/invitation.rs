//! Invitations: an offer to join a tenant, redeemed once with a secret token before it expires.

use chrono::{DateTime, Utc};
use keel_kernel::auth::Claims;
use keel_kernel::{Actor, Email, Error, TenantId};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{InvitationId, Role};

const PREFIX: &str = "kinv_";
const SECRET_BYTES: usize = 32;

/// An invitation token: `kinv_<tenant id, 32 hex>_<secret, 43 base64url>`.
///
/// The tenant travels in the token because the invitee accepts with a token that is not scoped
/// to any tenant yet, and every lookup of a tenant's rows needs its tenant (row-level security).
/// Only the SHA-256 of the whole token is stored; a token whose tenant part was changed hashes to
/// nothing that exists. The secret has 256 bits of entropy, so a fast hash is enough.
pub struct InvitationToken {
    pub tenant: TenantId,
    pub hash: [u8; 32],
}

impl InvitationToken {
    /// A fresh token for `tenant`: the secret to hand out once, and what to store.
    pub fn generate(tenant: TenantId) -> (String, InvitationToken) {
        use base64::Engine as _;
        let mut secret = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let token = format!(
            "{PREFIX}{}_{}",
            tenant.as_uuid().simple(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let hash = hash(&token);
        (token, InvitationToken { tenant, hash })
    }

    /// Read a presented token. Malformed tokens are VALIDATION errors on `field`.
    pub fn parse(field: &str, token: &str) -> Result<InvitationToken, Error> {
        let malformed = || Error::invalid(field, "is not an invitation token");
        if token.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        let rest = token.strip_prefix(PREFIX).ok_or_else(malformed)?;
        let (tenant, secret) = rest.split_once('_').ok_or_else(malformed)?;
        if tenant.len() != 32 || secret.len() != 43 {
            return Err(malformed());
        }
        let tenant = Uuid::try_parse(tenant).map_err(|_| malformed())?;
        Ok(InvitationToken {
            tenant: TenantId::from_uuid(tenant),
            hash: hash(token),
        })
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Accepted,
    Expired,
}

/// An invitation as stored (never with its token).
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    pub id: InvitationId,
    pub tenant_id: TenantId,
    /// The invitee's address, normalised (lowercase): addresses compare case-insensitively.
    pub email: String,
    pub role: Role,
    /// Who invited: a user, or an API key acting for the tenant.
    pub invited_by: Actor,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
}

impl Invitation {
    pub fn state(&self, now: DateTime<Utc>) -> InvitationState {
        if self.accepted_at.is_some() {
            InvitationState::Accepted
        } else if self.expires_at <= now {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }

    /// The address the accepting user joins with, if they are the invitee: the token's email,
    /// verified, equal to the invited address letter case aside. An invitation token is a bearer
    /// secret that can be forwarded or leaked; binding it to the address it was sent to means only
    /// the person who controls that mailbox can use it.
    ///
    /// No verified email is FAILED_PRECONDITION, not AUTHZ: the caller may well be the invitee, and
    /// verifying the address is a step they can take, then retry. It is checked before the
    /// comparison, so an unverified address (anyone can register any address) never learns
    /// whether it is the invited one. Another verified address is AUTHZ.
    pub fn check_invitee(&self, claims: &Claims) -> Result<String, Error> {
        let email = claims
            .email
            .as_deref()
            .map(str::trim)
            .filter(|email| !email.is_empty() && claims.email_verified)
            .ok_or_else(|| {
                Error::failed_precondition(
                    "accepting an invitation needs a verified email address; verify yours first",
                )
            })?;
        let is_invitee = Email::parse("email", email)
            .is_ok_and(|email| email.normalized() == self.email.as_str());
        if !is_invitee {
            return Err(Error::forbidden(
                "this invitation was sent to another address than your verified email",
            ));
        }
        Ok(email.to_owned())
    }

    /// FAILED_PRECONDITION unless the invitation can still be redeemed at `now` (tenancy.proto
    /// promises that code for used and expired invitations).
    pub fn check_redeemable(&self, now: DateTime<Utc>) -> Result<(), Error> {
        match self.state(now) {
            InvitationState::Pending => Ok(()),
            InvitationState::Accepted => Err(Error::failed_precondition(
                "this invitation has already been used; only a pending invitation can be accepted",
            )),
            InvitationState::Expired => Err(Error::failed_precondition(
                "this invitation has expired; only a pending invitation can be accepted, ask for a new one",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use keel_kernel::ErrorCode;

    use super::*;

    #[test]
    fn a_generated_token_parses_back_to_its_tenant_and_hash() {
        let tenant = TenantId::new();
        let (token, stored) = InvitationToken::generate(tenant);
        let parsed = InvitationToken::parse("token", &token).expect("well-formed");
        assert_eq!(parsed.tenant, tenant);
        assert_eq!(parsed.hash, stored.hash);
    }

    #[test]
    fn a_token_moved_to_another_tenant_hashes_differently() {
        let (token, stored) = InvitationToken::generate(TenantId::new());
        let other = TenantId::new().as_uuid().simple().to_string();
        let forged = format!("{PREFIX}{other}{}", &token[PREFIX.len() + 32..]);
        let parsed = InvitationToken::parse("token", &forged).expect("well-formed");
        assert_ne!(parsed.hash, stored.hash);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "kinv_",
            "nope",
            "kinv_zz_zz",
            &format!("{PREFIX}{}_short", "a".repeat(32)),
        ] {
            assert!(InvitationToken::parse("token", bad).is_err(), "{bad}");
        }
    }

    fn claims(email: Option<&str>, verified: bool) -> Claims {
        Claims {
            sub: keel_kernel::UserId::new().to_string(),
            kind: Default::default(),
            tid: None,
            roles: Vec::new(),
            perms: Vec::new(),
            sid: None,
            email: email.map(str::to_owned),
            email_verified: verified,
            scopes: Vec::new(),
            iss: String::new(),
            aud: String::new(),
            exp: 0,
            iat: 0,
            nbf: None,
            jti: String::new(),
        }
    }

    #[test]
    fn only_the_verified_invitee_passes_in_any_letter_case() {
        let now = Utc::now();
        let invitation = Invitation {
            id: InvitationId::new(),
            tenant_id: TenantId::new(),
            email: "ann@example.com".into(),
            role: Role::Member,
            invited_by: Actor::system("test"),
            created_at: now,
            expires_at: now,
            accepted_at: None,
        };
        let code = |claims: Claims| invitation.check_invitee(&claims).map_err(|err| err.code());
        assert_eq!(
            code(claims(Some("Ann@Example.COM"), true)),
            Ok("Ann@Example.COM".to_owned())
        );
        assert_eq!(
            code(claims(Some("ann@example.com"), false)),
            Err(ErrorCode::FailedPrecondition)
        );
        assert_eq!(code(claims(None, true)), Err(ErrorCode::FailedPrecondition));
        assert_eq!(
            code(claims(Some("bob@example.com"), true)),
            Err(ErrorCode::Authz)
        );
        assert_eq!(
            code(claims(Some("not an email"), true)),
            Err(ErrorCode::Authz)
        );
    }

    #[test]
    fn used_and_expired_invitations_cannot_be_redeemed() {
        let now = Utc::now();
        let mut invitation = Invitation {
            id: InvitationId::new(),
            tenant_id: TenantId::new(),
            email: "a@b.co".into(),
            role: Role::Member,
            invited_by: Actor::system("test"),
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
            accepted_at: None,
        };
        let refusal = |result: Result<(), Error>| result.map_err(|err| err.code()).err();
        assert!(invitation.check_redeemable(now).is_ok());
        assert_eq!(
            refusal(invitation.check_redeemable(now + chrono::Duration::hours(2))),
            Some(ErrorCode::FailedPrecondition)
        );
        invitation.accepted_at = Some(now);
        assert_eq!(
            refusal(invitation.check_redeemable(now)),
            Some(ErrorCode::FailedPrecondition)
        );
    }
}
