//! Password reset: requesting one (public, by email), the notifier's token for it, and using the
//! token to set a new password.

use chrono::Utc;
use keel_kernel::auth::PrincipalKind;
use keel_kernel::{Actor, Caller, Error, RequestMeta, db};
use keel_proto::identity::v1 as pb;
use uuid::Uuid;

use super::auth::Auth;
use crate::domain::audit::{actions, targets};
use crate::domain::lockout::{Limits, Throttle};
use crate::domain::{AuditEntry, Email, Password, RevokeReason, permissions, secrets};
use crate::events::publish::{self, types};
use crate::repo::{audit, password_resets, sessions, users};

/// Reset requests per email address (whether or not an account has it) before they are delayed,
/// and before that address is refused for the lockout period: enough for a person who lost a
/// mail or two, too few to flood someone's inbox.
const RESETS_FREE_PER_EMAIL: u32 = 3;
const RESETS_LOCK_PER_EMAIL: u32 = 10;
/// Reset requests from one client address, across emails.
const RESETS_FREE_PER_IP: u32 = 20;
const RESETS_LOCK_PER_IP: u32 = 100;

/// The counters a reset request is counted on. Their keys are their own (`reset-...`): asking
/// for resets never counts against logging in.
fn reset_throttles(normalized_email: &str, client_ip: &str) -> Vec<Throttle> {
    let mut throttles = vec![Throttle {
        key: format!("reset-email:{normalized_email}"),
        limits: Limits {
            free_attempts: RESETS_FREE_PER_EMAIL,
            lock_at: Some(RESETS_LOCK_PER_EMAIL),
        },
    }];
    if !client_ip.is_empty() {
        throttles.push(Throttle {
            key: format!("reset-ip:{client_ip}"),
            limits: Limits {
                free_attempts: RESETS_FREE_PER_IP,
                lock_at: Some(RESETS_LOCK_PER_IP),
            },
        });
    }
    throttles
}

impl Auth {
    #[tracing::instrument(skip_all)]
    pub(super) async fn request_password_reset(
        &self,
        meta: &RequestMeta,
        request: pb::RequestPasswordResetRequest,
    ) -> Result<(), Error> {
        let ctx = &self.0;
        let email = request.email.trim();
        if email.is_empty() {
            return Err(Error::invalid("email", "is required"));
        }
        if email.chars().any(char::is_control) || !email.contains('@') || email.len() > 320 {
            // No account can have such an email: saying so reveals nothing about who exists.
            return Err(Error::invalid("email", "must be an email address"));
        }
        // Counted whether or not the account exists (never given back), before looking it up.
        self.reserve_attempt(&reset_throttles(&Email::normalize(email), &meta.client_ip))
            .await?;

        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let Some((user, _)) = users::find_for_login(&mut tx, email).await? else {
            // Nothing to send; the caller gets the same empty answer as for an account.
            tracing::info!("password reset requested for an unknown email");
            return Ok(());
        };
        // Never delivered as is: the notifier asks for a fresh one by the reset's id.
        let token = secrets::random_token();
        let ttl = ctx.settings.tokens.password_reset_ttl_secs as i64;
        let expires_at = Utc::now() + chrono::Duration::seconds(ttl);
        let reset =
            password_resets::replace(&mut tx, user.id, &secrets::hash(&token), expires_at).await?;
        let requested = pb::PasswordResetRequested {
            user_id: user.id.to_string(),
            email: user.email.clone(),
            reset_id: reset.to_string(),
            expire_time: Some(keel_kernel::grpc::timestamp(expires_at)),
            ip_address: meta.client_ip.clone(),
            user_agent: meta.user_agent.clone(),
        };
        // Anonymous: whoever asked is not known to be the account's owner.
        let actor = Actor::system("identity");
        let event = publish::account_event(
            types::USER_PASSWORD_RESET_REQUESTED,
            user.id,
            &requested,
            meta,
            &actor,
        )?;
        ctx.outbox.enqueue(&mut tx, event).await?;
        let entry = AuditEntry::new(
            actor,
            meta,
            actions::USER_REQUEST_PASSWORD_RESET,
            targets::USER,
            user.id,
        );
        audit::record_account(&mut tx, user.id, &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A fresh token for an open reset, for the notifier to mail. Only service principals.
    #[tracing::instrument(skip_all)]
    pub(super) async fn issue_password_reset_token(
        &self,
        caller: &Caller,
        request: pb::IssuePasswordResetTokenRequest,
    ) -> Result<pb::IssuePasswordResetTokenResponse, Error> {
        let ctx = &self.0;
        if caller.claims.kind != PrincipalKind::Service {
            return Err(Error::forbidden(
                "only services may issue password-reset tokens",
            ));
        }
        caller.require(permissions::PASSWORD_RESET_ISSUE)?;
        let id = Uuid::parse_str(&request.reset_id)
            .map_err(|_| Error::invalid("reset_id", "must be a password reset id"))?;
        let token = secrets::random_token();
        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let (user_id, expires_at) = password_resets::rotate(&mut tx, id, &secrets::hash(&token))
            .await?
            .ok_or_else(|| Error::not_found("pending password reset", id))?;
        let user = users::get(&mut tx, user_id)
            .await?
            .ok_or_else(|| Error::not_found("pending password reset", id))?;
        tx.commit().await?;
        Ok(pb::IssuePasswordResetTokenResponse {
            user_id: user_id.to_string(),
            email: user.email,
            token,
            expire_time: Some(keel_kernel::grpc::timestamp(expires_at)),
        })
    }

    #[tracing::instrument(skip_all)]
    pub(super) async fn reset_password(
        &self,
        meta: &RequestMeta,
        request: pb::ResetPasswordRequest,
    ) -> Result<(), Error> {
        let ctx = &self.0;
        let mut fields = keel_kernel::Violations::default();
        if request.token.is_empty() {
            fields.add("token", "is required");
        }
        fields.finish()?;
        let new_password = Password::parse("new_password", &request.new_password)?;
        // Hashed before the token is used: a slow hash must not hold the row, and a failure here
        // leaves the token usable.
        let new_hash = ctx
            .hasher
            .hash_async(new_password.expose().to_owned())
            .await?;

        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let user = password_resets::consume(&mut tx, &secrets::hash(&request.token))
            .await?
            .ok_or_else(|| Error::invalid("token", "is invalid, used or expired"))?;
        // Locks the credential row: a concurrent password change waits for this one.
        if users::password_hash(&mut tx, user).await?.is_none() {
            return Err(Error::invalid("token", "is invalid, used or expired"));
        }
        users::set_password_hash(&mut tx, user, &new_hash).await?;
        // Any other open reset dies with this one.
        password_resets::close_open(&mut tx, user).await?;
        // The mail reached its owner: the address is proven.
        users::mark_verified(&mut tx, user).await?;
        let reason = RevokeReason::PasswordReset;
        let revoked = sessions::revoke_all_but(&mut tx, user, None, reason).await?;
        let actor = Actor::user(user);
        publish::sessions_revoked(&ctx.outbox, &mut tx, &revoked, reason, meta, &actor).await?;
        let entry = AuditEntry::new(
            actor,
            meta,
            actions::USER_RESET_PASSWORD,
            targets::USER,
            user,
        )
        .with("sessions_revoked", revoked.len().to_string());
        audit::record_account(&mut tx, user, &entry).await?;
        tx.commit().await?;
        Ok(())
    }
}
