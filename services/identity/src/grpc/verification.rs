//! Email verification: issuing a token (at registration and on request) and using it.

use chrono::Utc;
use keel_kernel::{Caller, Error, RequestMeta, db};
use keel_proto::identity::v1 as pb;
use sqlx::PgConnection;

use super::auth::Auth;
use super::convert;
use crate::domain::audit::{actions, targets};
use crate::domain::{AuditEntry, User, permissions, secrets};
use crate::events::publish::{self, types};
use crate::repo::{audit, users, verifications};
use keel_kernel::Actor;
use keel_kernel::auth::PrincipalKind;
use uuid::Uuid;

impl Auth {
    /// Issue a verification token (invalidating earlier ones) and ask a notifier to deliver it.
    pub(super) async fn request_verification(
        &self,
        conn: &mut PgConnection,
        meta: &RequestMeta,
        user: &User,
    ) -> Result<(), Error> {
        let ctx = &self.0;
        // Never delivered as is: a notifier asks for a fresh one by the verification's id.
        let token = secrets::random_token();
        let ttl = ctx.settings.tokens.email_verification_ttl_secs as i64;
        let expires_at = Utc::now() + chrono::Duration::seconds(ttl);
        let verification =
            verifications::replace(conn, user.id, &secrets::hash(&token), expires_at).await?;
        // The event names the verification, never its token: the notifier gets a token through
        // `issue_verification_token`, so no secret is retained in the stream.
        let requested = pb::UserVerificationRequested {
            user_id: user.id.to_string(),
            email: user.email.clone(),
            expire_time: Some(keel_kernel::grpc::timestamp(expires_at)),
            verification_id: verification.to_string(),
            locale: user.locale.clone(),
            request_locale: meta.preferred_locale.clone().unwrap_or_default(),
        };
        let actor = Actor::user(user.id);
        let event = publish::account_event(
            types::USER_VERIFICATION_REQUESTED,
            user.id,
            &requested,
            meta,
            &actor,
        )?;
        ctx.outbox.enqueue(conn, event).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    pub(super) async fn verify_email(
        &self,
        meta: &RequestMeta,
        request: pb::VerifyEmailRequest,
    ) -> Result<pb::User, Error> {
        let ctx = &self.0;
        if request.token.is_empty() {
            return Err(Error::invalid("token", "is required"));
        }
        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let user_id = verifications::consume(&mut tx, &secrets::hash(&request.token))
            .await?
            .ok_or_else(|| Error::invalid("token", "is invalid, used or expired"))?;
        let user = users::mark_verified(&mut tx, user_id)
            .await?
            .ok_or_else(|| Error::not_found("user", user_id))?;
        let entry = AuditEntry::new(
            Actor::user(user_id),
            meta,
            actions::USER_VERIFY_EMAIL,
            targets::USER,
            user_id,
        );
        audit::record_account(&mut tx, user_id, &entry).await?;
        tx.commit().await?;
        Ok(convert::user(&user))
    }

    #[tracing::instrument(skip_all)]
    pub(super) async fn request_email_verification(&self, caller: &Caller) -> Result<(), Error> {
        let ctx = &self.0;
        let user_id = caller.user()?;
        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let user = users::get(&mut tx, user_id)
            .await?
            .ok_or_else(|| Error::not_found("user", user_id))?;
        if user.email_verified {
            return Err(Error::failed_precondition("the email is already verified"));
        }
        self.request_verification(&mut tx, &caller.meta, &user)
            .await?;
        let entry = AuditEntry::by(
            caller,
            actions::USER_REQUEST_VERIFICATION,
            targets::USER,
            user_id,
        );
        audit::record_account(&mut tx, user_id, &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A fresh token for a pending verification, for the notifier to mail. Only service
    /// principals: a user holding the permission through a role pattern is still refused.
    #[tracing::instrument(skip_all)]
    pub(super) async fn issue_verification_token(
        &self,
        caller: &Caller,
        request: pb::IssueVerificationTokenRequest,
    ) -> Result<pb::IssueVerificationTokenResponse, Error> {
        let ctx = &self.0;
        if caller.claims.kind != PrincipalKind::Service {
            return Err(Error::forbidden(
                "only services may issue verification tokens",
            ));
        }
        caller.require(permissions::VERIFICATION_ISSUE)?;
        let id = Uuid::parse_str(&request.verification_id)
            .map_err(|_| Error::invalid("verification_id", "must be a verification id"))?;
        let token = secrets::random_token();
        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let (user_id, expires_at) = verifications::rotate(&mut tx, id, &secrets::hash(&token))
            .await?
            .ok_or_else(|| Error::not_found("pending verification", id))?;
        let user = users::get(&mut tx, user_id)
            .await?
            .ok_or_else(|| Error::not_found("pending verification", id))?;
        tx.commit().await?;
        Ok(pb::IssueVerificationTokenResponse {
            user_id: user_id.to_string(),
            email: user.email,
            token,
            expire_time: Some(keel_kernel::grpc::timestamp(expires_at)),
        })
    }
}
