//! AuthService: registration, login, refresh rotation, logout, tenant switching, email
//! verification, password change, the JWKS and the API key exchange.

use chrono::Utc;
use keel_kernel::db::{self, Tx};
use keel_kernel::outbox::NewEvent;
use keel_kernel::{Error, ErrorCode, TenantId, UserId};
use keel_proto::events::v1::actor;
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::auth_service_server::AuthService;
use tonic::{Request, Response, Status};

use super::State;
use super::context::{self, Meta};
use super::convert::{self, Registration};
use super::sessions::{grants_in, issue_pair, not_a_member, unscoped_grants};
use crate::domain::lockout::{self, Gate};
use crate::domain::{Email, Password, SessionId, secrets};
use crate::events::publish::{self, RevokeReason};
use crate::repo::sessions::{self, NewSession};
use crate::repo::users::UserRow;
use crate::repo::{audit, throttle, users, verifications};

pub struct AuthApi {
    state: State,
}

impl AuthApi {
    pub fn new(state: State) -> Self {
        AuthApi { state }
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let meta = Meta::of(&request);
        respond!(
            self.state,
            register(&self.state, &meta, request.into_inner())
        )
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let meta = Meta::of(&request);
        respond!(self.state, login(&self.state, &meta, request.into_inner()))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let meta = Meta::of(&request);
        respond!(
            self.state,
            refresh(&self.state, &meta, request.into_inner())
        )
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Result<Response<()>, Status> {
        let meta = Meta::of(&request);
        respond!(self.state, logout(&self.state, &meta, &request))
    }

    async fn switch_tenant(
        &self,
        request: Request<pb::SwitchTenantRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let meta = Meta::of(&request);
        respond!(self.state, switch_tenant(&self.state, &meta, &request))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let meta = Meta::of(&request);
        respond!(
            self.state,
            verify_email(&self.state, &meta, request.into_inner())
        )
    }

    async fn request_email_verification(
        &self,
        request: Request<pb::RequestEmailVerificationRequest>,
    ) -> Result<Response<()>, Status> {
        let meta = Meta::of(&request);
        respond!(
            self.state,
            request_email_verification(&self.state, &meta, &request)
        )
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<()>, Status> {
        let meta = Meta::of(&request);
        respond!(self.state, change_password(&self.state, &meta, &request))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::Jwks>, Status> {
        let jwks = self.state.tokens.keys().jwks();
        Ok(Response::new(pb::Jwks {
            keys: jwks.keys.iter().map(convert::jwk).collect(),
        }))
    }

    async fn exchange_api_key(
        &self,
        request: Request<pb::ExchangeApiKeyRequest>,
    ) -> Result<Response<pb::ExchangeApiKeyResponse>, Status> {
        respond!(
            self.state,
            super::access::exchange_api_key(&self.state, request.into_inner())
        )
    }
}

#[tracing::instrument(skip_all)]
async fn register(
    state: &State,
    meta: &Meta,
    request: pb::RegisterRequest,
) -> Result<pb::User, Error> {
    let registration = Registration::try_from(request)?;
    let hash = state
        .hasher
        .hash_async(registration.password.expose().to_owned())
        .await?;
    let id = UserId::new();
    let mut tx = db::unscoped_tx(&state.db).await?;
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
    let event = NewEvent::new("identity.user.registered", id, &registered)?
        .actor(actor::Kind::User, id)
        .correlation(&meta.request_id, &meta.request_id);
    state.outbox.enqueue(&mut tx, event).await?;
    request_verification(state, &mut tx, meta, &user).await?;
    audit::record_account(
        &mut tx,
        id,
        &meta.audit(
            ("user", id.to_string()),
            "identity.user.register",
            "user",
            id,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(convert::user(user))
}

/// Issue a verification token (invalidating earlier ones) and ask a notifier to deliver it.
async fn request_verification(
    state: &State,
    tx: &mut Tx,
    meta: &Meta,
    user: &UserRow,
) -> Result<(), Error> {
    let token = secrets::random_token();
    let expires_at = Utc::now()
        + chrono::Duration::seconds(state.settings.tokens.email_verification_ttl_secs as i64);
    verifications::replace(tx, user.id, &secrets::hash(&token), expires_at).await?;
    let requested = pb::UserVerificationRequested {
        user_id: user.id.to_string(),
        email: user.email.clone(),
        token,
        expire_time: Some(convert::timestamp(expires_at)),
    };
    let event = NewEvent::new("identity.user.verification_requested", user.id, &requested)?
        .actor(actor::Kind::User, user.id)
        .correlation(&meta.request_id, &meta.request_id);
    state.outbox.enqueue(tx, event).await?;
    Ok(())
}

/// The one answer to a wrong email or password: it never says which.
fn bad_credentials() -> Error {
    Error::unauthenticated("invalid email or password")
}

fn locked_out(wait: std::time::Duration) -> Error {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    Error::new(
        ErrorCode::RateLimit,
        format!("too many failed sign-in attempts; try again in {seconds} seconds"),
    )
    .with_retry_after(std::time::Duration::from_secs(seconds))
}

/// The failure counters an attempt is checked against, with their lockout thresholds.
fn throttle_keys(state: &State, meta: &Meta, email: &str) -> Vec<(String, u32)> {
    let policy = &state.settings.lockout;
    let mut keys = vec![(
        format!("account:{}", Email::normalize(email)),
        policy.account_threshold,
    )];
    if !meta.ip.is_empty() {
        keys.push((format!("ip:{}", meta.ip), policy.ip_threshold));
    }
    keys
}

#[tracing::instrument(skip_all)]
async fn login(
    state: &State,
    meta: &Meta,
    request: pb::LoginRequest,
) -> Result<pb::TokenPair, Error> {
    let mut fields = convert::Fields::new();
    if request.email.trim().is_empty() {
        fields.reject(Error::invalid("email", "is required"));
    } else if request.email.chars().any(char::is_control) {
        // No account can have such an email, so saying so reveals nothing about who exists.
        fields.reject(Error::invalid(
            "email",
            "must not contain control characters",
        ));
    }
    if request.password.is_empty() {
        fields.reject(Error::invalid("password", "is required"));
    }
    fields.finish()?;

    let keys = throttle_keys(state, meta, &request.email);
    let mut conn = state.db.acquire().await?;
    let now = Utc::now();
    for (key, _) in &keys {
        if let Gate::Closed(wait) =
            lockout::gate(throttle::get(&mut conn, key).await?.as_ref(), now)
        {
            return Err(locked_out(wait));
        }
    }
    let found = users::find_for_login(&mut conn, &Email::normalize(&request.email)).await?;
    drop(conn);
    // An unknown email is checked against a dummy hash: the same work, the same answer.
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, state.dummy_hash.to_string()),
    };
    let matches = state.hasher.verify_async(request.password, hash).await?;
    let Some(user) = user.filter(|_| matches) else {
        record_failure(state, &keys).await?;
        return Err(bad_credentials());
    };

    let mut tx = db::unscoped_tx(&state.db).await?;
    throttle::clear(&mut tx, &keys[0].0).await?;
    let session = SessionId::new();
    let expires_at =
        Utc::now() + chrono::Duration::seconds(state.settings.tokens.refresh_ttl_secs as i64);
    let new_session = NewSession {
        id: session,
        user: user.id,
        user_agent: &meta.user_agent,
        ip_address: &meta.ip,
        expires_at,
    };
    sessions::create(&mut tx, new_session).await?;
    let grants = unscoped_grants(state, &mut tx, user.id).await?;
    let pair = issue_pair(state, &mut tx, user.id, session, None, grants).await?;
    audit::record_account(
        &mut tx,
        user.id,
        &meta.audit(
            ("user", user.id.to_string()),
            "identity.session.create",
            "session",
            session,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(pair)
}

/// Count a failed attempt against every key, each under its own threshold.
async fn record_failure(state: &State, keys: &[(String, u32)]) -> Result<(), Error> {
    let mut tx = db::unscoped_tx(&state.db).await?;
    let now = Utc::now();
    for (key, threshold) in keys {
        let counter = throttle::get(&mut tx, key).await?;
        let next = lockout::after_failure(counter, now, &state.settings.lockout, *threshold);
        throttle::put(&mut tx, key, &next).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[tracing::instrument(skip_all)]
async fn refresh(
    state: &State,
    meta: &Meta,
    request: pb::RefreshRequest,
) -> Result<pb::TokenPair, Error> {
    if request.refresh_token.is_empty() {
        return Err(Error::invalid("refresh_token", "is required"));
    }
    let invalid = || Error::unauthenticated("invalid refresh token");
    let mut tx = db::unscoped_tx(&state.db).await?;
    let presented = sessions::find_refresh_token(&mut tx, &secrets::hash(&request.refresh_token))
        .await?
        .ok_or_else(invalid)?;
    let session = presented.session;
    if presented.used {
        // Reuse: the token was stolen or the client is confused; either way the family is ended.
        if let Some(revoked) = sessions::revoke(
            &mut tx,
            session.user_id,
            session.id,
            RevokeReason::RefreshTokenReuse.as_str(),
        )
        .await?
        {
            let actor = ("system", "identity".to_owned());
            publish::sessions_revoked(
                &state.outbox,
                &mut tx,
                &[revoked],
                RevokeReason::RefreshTokenReuse,
                meta,
                actor,
            )
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
    let grants = match session.scope_tenant {
        None => unscoped_grants(state, &mut tx, session.user_id).await?,
        Some(tenant) => grants_in(&mut tx, tenant, session.user_id)
            .await?
            .ok_or_else(not_a_member)?,
    };
    let pair = issue_pair(
        state,
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

/// The caller's user and session, for calls that act on the caller's own session.
fn session_of<T>(
    request: &Request<T>,
) -> Result<(UserId, SessionId, keel_kernel::auth::Claims), Error> {
    let claims = context::claims(request)?;
    let user = claims.user_id()?;
    let session = claims
        .sid
        .as_deref()
        .and_then(|sid| sid.parse().ok())
        .ok_or_else(|| Error::unauthenticated("the token has no session"))?;
    Ok((user, session, claims))
}

#[tracing::instrument(skip_all)]
async fn logout(
    state: &State,
    meta: &Meta,
    request: &Request<pb::LogoutRequest>,
) -> Result<(), Error> {
    let (user, session, claims) = session_of(request)?;
    let mut tx = db::unscoped_tx(&state.db).await?;
    // Already revoked is fine: logging out twice ends in the same place.
    if let Some(revoked) =
        sessions::revoke(&mut tx, user, session, RevokeReason::Logout.as_str()).await?
    {
        publish::sessions_revoked(
            &state.outbox,
            &mut tx,
            &[revoked],
            RevokeReason::Logout,
            meta,
            context::actor(&claims),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[tracing::instrument(skip_all)]
async fn switch_tenant(
    state: &State,
    meta: &Meta,
    request: &Request<pb::SwitchTenantRequest>,
) -> Result<pb::TokenPair, Error> {
    let (user, session_id, claims) = session_of(request)?;
    let tenant = TenantId::parse_field("tenant_id", &request.get_ref().tenant_id)?;
    let mut tx = db::unscoped_tx(&state.db).await?;
    let session = sessions::get(&mut tx, session_id).await?;
    if !session.is_some_and(|s| s.user_id == user && s.is_live(Utc::now())) {
        return Err(Error::unauthenticated(
            "the session has ended; log in again",
        ));
    }
    let grants = grants_in(&mut tx, tenant, user)
        .await?
        .ok_or_else(not_a_member)?;
    let pair = issue_pair(state, &mut tx, user, session_id, Some(tenant), grants).await?;
    let mut entry = meta.audit(
        context::actor(&claims),
        "identity.session.switch_tenant",
        "session",
        session_id,
    );
    entry
        .metadata
        .insert("tenant_id".into(), tenant.to_string());
    audit::record_account(&mut tx, user, &entry).await?;
    tx.commit().await?;
    Ok(pair)
}

#[tracing::instrument(skip_all)]
async fn verify_email(
    state: &State,
    meta: &Meta,
    request: pb::VerifyEmailRequest,
) -> Result<pb::User, Error> {
    if request.token.is_empty() {
        return Err(Error::invalid("token", "is required"));
    }
    let mut tx = db::unscoped_tx(&state.db).await?;
    let user_id = verifications::consume(&mut tx, &secrets::hash(&request.token))
        .await?
        .ok_or_else(|| Error::invalid("token", "is invalid, used or expired"))?;
    let user = users::mark_verified(&mut tx, user_id)
        .await?
        .ok_or_else(|| Error::not_found("user", user_id))?;
    audit::record_account(
        &mut tx,
        user_id,
        &meta.audit(
            ("user", user_id.to_string()),
            "identity.user.verify_email",
            "user",
            user_id,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(convert::user(user))
}

#[tracing::instrument(skip_all)]
async fn request_email_verification(
    state: &State,
    meta: &Meta,
    request: &Request<pb::RequestEmailVerificationRequest>,
) -> Result<(), Error> {
    let claims = context::claims(request)?;
    let user_id = claims.user_id()?;
    let mut tx = db::unscoped_tx(&state.db).await?;
    let user = users::get(&mut tx, user_id)
        .await?
        .ok_or_else(|| Error::not_found("user", user_id))?;
    if user.email_verified {
        return Err(Error::new(
            ErrorCode::Validation,
            "the email is already verified",
        ));
    }
    request_verification(state, &mut tx, meta, &user).await?;
    audit::record_account(
        &mut tx,
        user_id,
        &meta.audit(
            context::actor(&claims),
            "identity.user.request_verification",
            "user",
            user_id,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[tracing::instrument(skip_all)]
async fn change_password(
    state: &State,
    meta: &Meta,
    request: &Request<pb::ChangePasswordRequest>,
) -> Result<(), Error> {
    let (user, session, claims) = session_of(request)?;
    let body = request.get_ref();
    if body.current_password.is_empty() {
        return Err(Error::invalid("current_password", "is required"));
    }
    let new_password = Password::parse("new_password", &body.new_password)?;
    let mut conn = state.db.acquire().await?;
    let current_hash = users::password_hash(&mut conn, user)
        .await?
        .ok_or_else(|| Error::not_found("user", user))?;
    drop(conn);
    if !state
        .hasher
        .verify_async(body.current_password.clone(), current_hash.clone())
        .await?
    {
        return Err(Error::invalid(
            "current_password",
            "is not the current password",
        ));
    }
    let new_hash = state
        .hasher
        .hash_async(new_password.expose().to_owned())
        .await?;

    let mut tx = db::unscoped_tx(&state.db).await?;
    // Locked and compared: a concurrent change in between wins, this one is refused.
    if users::password_hash(&mut tx, user).await?.as_deref() != Some(current_hash.as_str()) {
        return Err(Error::conflict("the password changed meanwhile; try again"));
    }
    users::set_password_hash(&mut tx, user, &new_hash).await?;
    let revoked = sessions::revoke_all_but(
        &mut tx,
        user,
        Some(session),
        RevokeReason::PasswordChanged.as_str(),
    )
    .await?;
    let actor = context::actor(&claims);
    publish::sessions_revoked(
        &state.outbox,
        &mut tx,
        &revoked,
        RevokeReason::PasswordChanged,
        meta,
        actor.clone(),
    )
    .await?;
    audit::record_account(
        &mut tx,
        user,
        &meta.audit(actor, "identity.user.change_password", "user", user),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
