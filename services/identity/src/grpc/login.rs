//! Registration, login with its lockout, refresh-token rotation, and password change: the use
//! cases that check a credential.

use chrono::Utc;
use keel_kernel::db::{self, TenantTx};
use keel_kernel::{Actor, Caller, Error, ErrorCode, RequestMeta, UserId};
use keel_proto::identity::v1 as pb;

use super::auth::Auth;
use super::convert::{self, Registration};
use super::sessions::{grants_in, issue_pair, not_a_member, session_of, unscoped_grants};
use crate::domain::audit::{actions, targets};
use crate::domain::lockout::{self, Gate, Throttle};
use crate::domain::{AuditEntry, Email, Password, RevokeReason, SessionId, secrets};
use crate::events::publish::{self, types};
use crate::repo::sessions::{self, NewSession};
use crate::repo::{audit, throttle, users};

/// The one answer to a wrong email or password: it never says which.
fn bad_credentials() -> Error {
    Error::unauthenticated("invalid email or password")
}

fn locked_out(wait: std::time::Duration) -> Error {
    Error::new(
        ErrorCode::RateLimit,
        format!(
            "too many failed sign-in attempts; {}",
            lockout::try_again_in(wait)
        ),
    )
    .with_retry_after(std::time::Duration::from_secs(lockout::whole_seconds(wait)))
}

impl Auth {
    #[tracing::instrument(skip_all)]
    pub(super) async fn register(
        &self,
        meta: &RequestMeta,
        request: pb::RegisterRequest,
    ) -> Result<pb::User, Error> {
        let ctx = &self.0;
        let registration = Registration::try_from(request)?;
        let hash = ctx
            .hasher
            .hash_async(registration.password.expose().to_owned())
            .await?;
        let id = UserId::new();
        let actor = Actor::user(id);
        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let user = users::create(
            &mut tx,
            id,
            &registration.email,
            &registration.display_name,
            &hash,
        )
        .await?;
        let registered = pb::UserRegistered {
            user_id: id.to_string(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
        };
        let event = publish::account_event(types::USER_REGISTERED, id, &registered, meta, &actor)?;
        ctx.outbox.enqueue(&mut tx, event).await?;
        self.request_verification(&mut tx, meta, &user).await?;
        let entry = AuditEntry::new(actor, meta, actions::USER_REGISTER, targets::USER, id);
        audit::record_account(&mut tx, id, &entry).await?;
        tx.commit().await?;
        Ok(convert::user(&user))
    }

    /// The failure counters an attempt on `email` is checked against (see `domain::lockout`).
    fn throttles(&self, meta: &RequestMeta, email: &str) -> Vec<Throttle> {
        lockout::throttles(
            &self.0.settings.lockout,
            &Email::normalize(email),
            &meta.client_ip,
        )
    }

    /// Check `password` against `hash` as one attempt on `throttles`: the attempt is counted as a
    /// failure before the (slow) check, atomically with the decision to let it through, so any
    /// number of parallel attempts gets exactly as many checks as the limits allow. A right
    /// password, or a check that never ran, gives the attempt back.
    async fn check_password(
        &self,
        throttles: &[Throttle],
        password: String,
        hash: String,
    ) -> Result<bool, Error> {
        self.reserve_attempt(throttles).await?;
        match self.0.hasher.verify_async(password, hash).await {
            Ok(false) => Ok(false),
            Ok(true) => {
                self.give_back_attempt(throttles, true).await?;
                Ok(true)
            }
            Err(err) => {
                self.give_back_attempt(throttles, false).await?;
                Err(err)
            }
        }
    }

    /// Count one attempt on every counter, or refuse it (counting nothing) if any is closed.
    pub(super) async fn reserve_attempt(&self, throttles: &[Throttle]) -> Result<(), Error> {
        let ctx = &self.0;
        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let now = Utc::now();
        let mut counters = Vec::with_capacity(throttles.len());
        let mut longest_wait = None;
        for throttle in throttles {
            let counter = throttle::lock(&mut tx, &throttle.key).await?;
            if let Gate::Closed(wait) = lockout::gate(Some(&counter), now) {
                longest_wait = longest_wait.max(Some(wait));
            }
            counters.push(counter);
        }
        if let Some(wait) = longest_wait {
            return Err(locked_out(wait));
        }
        for (throttle, counter) in throttles.iter().zip(counters) {
            let next =
                lockout::after_failure(Some(counter), now, &ctx.settings.lockout, throttle.limits);
            throttle::put(&mut tx, &throttle.key, &next).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Undo a reservation: after a right password the (account, IP) history is forgiven; the
    /// shared counters only get this attempt back, keeping everyone else's failures.
    pub(super) async fn give_back_attempt(
        &self,
        throttles: &[Throttle],
        succeeded: bool,
    ) -> Result<(), Error> {
        let mut tx = db::unscoped_tx(&self.0.db).await?;
        for throttle in throttles {
            if succeeded && throttle.cleared_by_success() {
                throttle::clear(&mut tx, &throttle.key).await?;
            } else if let Some(counter) = throttle::get(&mut tx, &throttle.key).await? {
                let refunded = lockout::after_refund(counter, throttle.limits);
                throttle::put(&mut tx, &throttle.key, &refunded).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    pub(super) async fn login(
        &self,
        meta: &RequestMeta,
        request: pb::LoginRequest,
    ) -> Result<pb::TokenPair, Error> {
        let ctx = &self.0;
        let mut fields = keel_kernel::Violations::default();
        if request.email.trim().is_empty() {
            fields.add("email", "is required");
        } else if request.email.chars().any(char::is_control) {
            // No account can have such an email, so saying so reveals nothing about who exists.
            fields.add("email", "must not contain control characters");
        }
        if request.password.is_empty() {
            fields.add("password", "is required");
        }
        fields.finish()?;

        let throttles = self.throttles(meta, &request.email);
        let mut conn = ctx.db.acquire().await?;
        let found = users::find_for_login(&mut conn, &request.email).await?;
        drop(conn);
        // An unknown email is checked against a dummy hash: the same work, the same answer.
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, ctx.dummy_hash.clone()),
        };
        let matches = self
            .check_password(&throttles, request.password, hash)
            .await?;
        let Some(user) = user.filter(|_| matches) else {
            return Err(bad_credentials());
        };

        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let session = SessionId::new();
        let expires_at =
            Utc::now() + chrono::Duration::seconds(ctx.settings.tokens.refresh_ttl_secs as i64);
        let new_session = NewSession {
            id: session,
            user: user.id,
            user_agent: &meta.user_agent,
            ip_address: &meta.client_ip,
            expires_at,
        };
        sessions::create(&mut tx, new_session).await?;
        let grants = unscoped_grants(ctx, &mut tx, user.id).await?;
        let pair = issue_pair(ctx, &mut tx, user.id, session, None, grants).await?;
        let entry = AuditEntry::new(
            Actor::user(user.id),
            meta,
            actions::SESSION_CREATE,
            targets::SESSION,
            session,
        );
        audit::record_account(&mut tx, user.id, &entry).await?;
        tx.commit().await?;
        Ok(pair)
    }

    #[tracing::instrument(skip_all)]
    pub(super) async fn refresh(
        &self,
        meta: &RequestMeta,
        request: pb::RefreshRequest,
    ) -> Result<pb::TokenPair, Error> {
        let ctx = &self.0;
        if request.refresh_token.is_empty() {
            return Err(Error::invalid("refresh_token", "is required"));
        }
        let invalid = || Error::unauthenticated("invalid refresh token");
        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let presented =
            sessions::find_refresh_token(&mut tx, &secrets::hash(&request.refresh_token))
                .await?
                .ok_or_else(invalid)?;
        let session = presented.session;
        if presented.used {
            // Reuse: the token was stolen or the client is confused; either way the family ends.
            let reason = RevokeReason::RefreshTokenReuse;
            if let Some(revoked) =
                sessions::revoke(&mut tx, session.user_id, session.id, reason).await?
            {
                let actor = Actor::system("identity");
                publish::sessions_revoked(&ctx.outbox, &mut tx, &[revoked], reason, meta, &actor)
                    .await?;
            }
            tx.commit().await?;
            return Err(Error::unauthenticated(
                "refresh token already used; the session has been revoked",
            ));
        }
        if !session.is_live(Utc::now()) {
            return Err(Error::unauthenticated(
                "the session has ended; log in again",
            ));
        }
        let (grants, mut tx) = match session.scope_tenant {
            None => (unscoped_grants(ctx, &mut tx, session.user_id).await?, tx),
            Some(tenant) => {
                // Role bindings are tenant rows: read them in the session's tenant.
                let mut scoped = TenantTx::scope(tx, tenant).await?;
                let grants = grants_in(&mut scoped, session.user_id)
                    .await?
                    .ok_or_else(not_a_member)?;
                (grants, scoped.into_inner())
            }
        };
        let pair = issue_pair(
            ctx,
            &mut tx,
            session.user_id,
            session.id,
            session.scope_tenant,
            grants,
        )
        .await?;
        tx.commit().await?;
        Ok(pair)
    }

    #[tracing::instrument(skip_all)]
    pub(super) async fn change_password(
        &self,
        caller: &Caller,
        request: pb::ChangePasswordRequest,
    ) -> Result<(), Error> {
        let ctx = &self.0;
        let (user, session) = session_of(caller)?;
        if request.current_password.is_empty() {
            return Err(Error::invalid("current_password", "is required"));
        }
        let new_password = Password::parse("new_password", &request.new_password)?;
        let mut conn = ctx.db.acquire().await?;
        let account = users::get(&mut conn, user)
            .await?
            .ok_or_else(|| Error::not_found("user", user))?;
        let current_hash = users::password_hash(&mut conn, user)
            .await?
            .ok_or_else(|| Error::not_found("user", user))?;
        drop(conn);
        // A stolen access token must not become an unthrottled password oracle: the check counts
        // on the same counters as a login to this account from this address.
        let throttles = self.throttles(&caller.meta, &account.email);
        if !self
            .check_password(&throttles, request.current_password, current_hash.clone())
            .await?
        {
            return Err(Error::invalid(
                "current_password",
                "is not the current password",
            ));
        }
        let new_hash = ctx
            .hasher
            .hash_async(new_password.expose().to_owned())
            .await?;

        let mut tx = db::unscoped_tx(&ctx.db).await?;
        // Locked and compared: a concurrent change in between wins, this one is retried.
        if users::password_hash(&mut tx, user).await?.as_deref() != Some(current_hash.as_str()) {
            return Err(Error::aborted("the password changed meanwhile; try again"));
        }
        users::set_password_hash(&mut tx, user, &new_hash).await?;
        let reason = RevokeReason::PasswordChanged;
        let revoked = sessions::revoke_all_but(&mut tx, user, Some(session), reason).await?;
        let actor = caller.actor();
        publish::sessions_revoked(&ctx.outbox, &mut tx, &revoked, reason, &caller.meta, &actor)
            .await?;
        let entry = AuditEntry::by(caller, actions::USER_CHANGE_PASSWORD, targets::USER, user);
        audit::record_account(&mut tx, user, &entry).await?;
        tx.commit().await?;
        Ok(())
    }
}
