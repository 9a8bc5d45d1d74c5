//! UserService: the caller's own profile and sessions, and the internal user lookup.

use keel_kernel::auth::PrincipalKind;
use keel_kernel::grpc::paging::{self, AfterId, PageSize, PageToken};
use keel_kernel::{Caller, Error, UserId, db};
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::user_service_server::UserService;
use tonic::{Request, Response, Status};

use super::{Shared, convert};
use crate::domain::audit::{actions, targets};
use crate::domain::{AuditEntry, DisplayName, RevokeReason, SessionId, permissions};
use crate::events::publish;
use crate::repo::{audit, sessions, tenancy, users};

pub struct Users(pub Shared);

#[tonic::async_trait]
impl UserService for Users {
    async fn get_me(
        &self,
        request: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.get_me(&caller).await?))
    }

    async fn update_me(
        &self,
        request: Request<pb::UpdateMeRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.update_me(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_sessions(&caller, request.into_inner()).await?,
        ))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.revoke_session(&caller, request.into_inner()).await?,
        ))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.get_user(&caller, request.into_inner()).await?,
        ))
    }
}

impl Users {
    async fn get_me(&self, caller: &Caller) -> Result<pb::User, Error> {
        let user = caller.user()?;
        let mut tx = db::unscoped_tx(&self.0.db).await?;
        let found = users::get(&mut tx, user)
            .await?
            .ok_or_else(|| Error::not_found("user", user))?;
        tx.commit().await?;
        Ok(convert::user(&found))
    }

    #[tracing::instrument(skip_all)]
    async fn update_me(
        &self,
        caller: &Caller,
        request: pb::UpdateMeRequest,
    ) -> Result<pb::User, Error> {
        let user = caller.user()?;
        let paths = request
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
        let given = request
            .user
            .as_ref()
            .ok_or_else(|| Error::invalid("user", "is required"))?;
        let name = DisplayName::parse("user.display_name", &given.display_name)?;
        let mut tx = db::unscoped_tx(&self.0.db).await?;
        let updated = users::set_display_name(&mut tx, user, &name)
            .await?
            .ok_or_else(|| Error::not_found("user", user))?;
        let entry = AuditEntry::by(caller, actions::USER_UPDATE, targets::USER, user);
        audit::record_account(&mut tx, user, &entry).await?;
        tx.commit().await?;
        Ok(convert::user(&updated))
    }

    async fn list_sessions(
        &self,
        caller: &Caller,
        request: pb::ListSessionsRequest,
    ) -> Result<pb::ListSessionsResponse, Error> {
        let user = caller.user()?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<AfterId>(&request.page_token)?
            .map(|cursor| SessionId::from_uuid(cursor.0));
        let mut tx = db::unscoped_tx(&self.0.db).await?;
        let rows = sessions::list_live(&mut tx, user, after, size.fetch_limit()).await?;
        tx.commit().await?;
        let (page, next_page_token) =
            paging::split_page(rows, size, |session| AfterId(session.id.as_uuid()));
        let current = caller.claims.sid.as_deref();
        Ok(pb::ListSessionsResponse {
            sessions: page
                .iter()
                .map(|session| convert::session(session, current))
                .collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_session(
        &self,
        caller: &Caller,
        request: pb::RevokeSessionRequest,
    ) -> Result<(), Error> {
        let ctx = &self.0;
        let user = caller.user()?;
        let session = SessionId::parse_field("session_id", &request.session_id)?;
        let reason = RevokeReason::UserRequest;
        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let revoked = sessions::revoke(&mut tx, user, session, reason)
            .await?
            .ok_or_else(|| Error::not_found("session", session))?;
        let actor = caller.actor();
        publish::sessions_revoked(
            &ctx.outbox,
            &mut tx,
            &[revoked],
            reason,
            &caller.meta,
            &actor,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Services holding `identity.user.read` may look any user up; a user may look up themselves, and the members of the
    /// tenant their token is scoped to.
    async fn get_user(
        &self,
        caller: &Caller,
        request: pb::GetUserRequest,
    ) -> Result<pb::User, Error> {
        let ctx = &self.0;
        let target = UserId::parse_field("user_id", &request.user_id)?;
        let claims = &caller.claims;
        let visible = match claims.kind {
            // A service needs the right explicitly: holding a service token is not enough.
            PrincipalKind::Service => caller.claims.has_permission(permissions::USER_READ),
            PrincipalKind::User if caller.user()? == target => true,
            PrincipalKind::User | PrincipalKind::ApiKey => match claims.tid {
                Some(tenant) => {
                    let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
                    let member = tenancy::member_role(&mut tx, target).await?.is_some();
                    tx.commit().await?;
                    member
                }
                None => false,
            },
        };
        // Not visible and not there look the same.
        let found = match visible {
            true => {
                let mut tx = db::unscoped_tx(&ctx.db).await?;
                let found = users::get(&mut tx, target).await?;
                tx.commit().await?;
                found
            }
            false => None,
        };
        found
            .map(|user| convert::user(&user))
            .ok_or_else(|| Error::not_found("user", target))
    }
}
