//! UserService: the caller's own profile and sessions, and the internal user lookup.

use keel_kernel::auth::PrincipalKind;
use keel_kernel::db;
use keel_kernel::{Error, UserId};
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::user_service_server::UserService;
use tonic::{Request, Response, Status};

use super::context::{self, Meta};
use super::{State, convert, paging};
use crate::domain::{DisplayName, SessionId};
use crate::events::publish::{self, RevokeReason};
use crate::repo::{self, audit, sessions, tenancy, users};

pub struct UserApi {
    state: State,
}

impl UserApi {
    pub fn new(state: State) -> Self {
        UserApi { state }
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn get_me(
        &self,
        request: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::User>, Status> {
        respond!(self.state, get_me(&self.state, &request))
    }

    async fn update_me(
        &self,
        request: Request<pb::UpdateMeRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let meta = Meta::of(&request);
        respond!(self.state, update_me(&self.state, &meta, &request))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        respond!(self.state, list_sessions(&self.state, &request))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<()>, Status> {
        let meta = Meta::of(&request);
        respond!(self.state, revoke_session(&self.state, &meta, &request))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        respond!(self.state, get_user(&self.state, &request))
    }
}

async fn get_me(state: &State, request: &Request<pb::GetMeRequest>) -> Result<pb::User, Error> {
    let user = context::claims(request)?.user_id()?;
    let mut tx = db::unscoped_tx(&state.db).await?;
    let row = users::get(&mut tx, user)
        .await?
        .ok_or_else(|| Error::not_found("user", user))?;
    tx.commit().await?;
    Ok(convert::user(row))
}

#[tracing::instrument(skip_all)]
async fn update_me(
    state: &State,
    meta: &Meta,
    request: &Request<pb::UpdateMeRequest>,
) -> Result<pb::User, Error> {
    let claims = context::claims(request)?;
    let user = claims.user_id()?;
    let body = request.get_ref();
    let paths = body
        .update_mask
        .as_ref()
        .map(|mask| mask.paths.clone())
        .unwrap_or_default();
    // AIP-134: an empty mask means every updatable field, and only display_name is.
    if let Some(other) = paths.iter().find(|path| path.as_str() != "display_name") {
        return Err(Error::invalid(
            "update_mask",
            format!("{other} cannot be updated; only display_name can"),
        ));
    }
    let given = body
        .user
        .as_ref()
        .ok_or_else(|| Error::invalid("user", "is required"))?;
    let name = DisplayName::parse("user.display_name", &given.display_name)?;
    let mut tx = db::unscoped_tx(&state.db).await?;
    let row = users::set_display_name(&mut tx, user, &name)
        .await?
        .ok_or_else(|| Error::not_found("user", user))?;
    audit::record_account(
        &mut tx,
        user,
        &meta.audit(
            context::actor(&claims),
            "identity.user.update",
            "user",
            user,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(convert::user(row))
}

async fn list_sessions(
    state: &State,
    request: &Request<pb::ListSessionsRequest>,
) -> Result<pb::ListSessionsResponse, Error> {
    let claims = context::claims(request)?;
    let user = claims.user_id()?;
    let body = request.get_ref();
    let limit = repo::page_size(body.page_size, 50, 200);
    let after = paging::decode_after(&body.page_token)?.map(SessionId::from_uuid);
    let mut tx = db::unscoped_tx(&state.db).await?;
    let mut rows = sessions::list_live(&mut tx, user, after, limit + 1).await?;
    tx.commit().await?;
    let next_page_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|row| paging::encode_after(row.id.as_uuid()))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let current = claims.sid.as_deref();
    Ok(pb::ListSessionsResponse {
        sessions: rows
            .into_iter()
            .map(|row| convert::session(row, current))
            .collect(),
        next_page_token,
    })
}

#[tracing::instrument(skip_all)]
async fn revoke_session(
    state: &State,
    meta: &Meta,
    request: &Request<pb::RevokeSessionRequest>,
) -> Result<(), Error> {
    let claims = context::claims(request)?;
    let user = claims.user_id()?;
    let session = SessionId::parse_field("session_id", &request.get_ref().session_id)?;
    let mut tx = db::unscoped_tx(&state.db).await?;
    let revoked = sessions::revoke(&mut tx, user, session, RevokeReason::UserRequest.as_str())
        .await?
        .ok_or_else(|| Error::not_found("session", session))?;
    publish::sessions_revoked(
        &state.outbox,
        &mut tx,
        &[revoked],
        RevokeReason::UserRequest,
        meta,
        context::actor(&claims),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Services may look any user up; a user may look up themselves, and the members of the tenant
/// their token is scoped to.
async fn get_user(state: &State, request: &Request<pb::GetUserRequest>) -> Result<pb::User, Error> {
    let claims = context::claims(request)?;
    let target = UserId::parse_field("user_id", &request.get_ref().user_id)?;
    let mut tx = db::unscoped_tx(&state.db).await?;
    let allowed = match claims.kind {
        PrincipalKind::Service => true,
        PrincipalKind::User if claims.user_id()? == target => true,
        PrincipalKind::User | PrincipalKind::ApiKey => match claims.tid {
            Some(tenant) => {
                db::set_tenant(&mut tx, tenant).await?;
                tenancy::member_role(&mut tx, tenant, target)
                    .await?
                    .is_some()
            }
            None => false,
        },
    };
    // Not visible and not there look the same.
    let row = match allowed {
        true => users::get(&mut tx, target).await?,
        false => None,
    };
    tx.commit().await?;
    row.map(convert::user)
        .ok_or_else(|| Error::not_found("user", target))
}
