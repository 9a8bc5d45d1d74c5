//! MembershipService: invitations and members.

use chrono::Utc;
use keel_kernel::db::Tx;
use keel_kernel::{Error, TenantId, UserId, db};
use keel_proto::tenancy::v1 as pb;
use keel_proto::tenancy::v1::membership_service_server::MembershipService;
use tonic::{Request, Response, Status};

use super::Shared;
use super::convert::{self, NewInvitationInput, RoleChange, member_target, tenant_id};
use super::page::{decode_time_id, encode_time_id, page_size, split_page};
use crate::domain::access::perms;
use crate::domain::member::keep_an_owner;
use crate::domain::{Caller, InvitationToken, Membership};
use crate::repo::invitations::NewInvitation;
use crate::{events, repo};

pub struct Memberships(pub Shared);

/// AUTHZ unless `caller` is an owner of the tenant: granting or taking away the owner role is for
/// owners only, whatever permissions the token carries. Decided from tenancy's own records.
async fn require_owner(
    tx: &mut Tx,
    tenant: TenantId,
    caller: &Caller,
    what: &str,
) -> Result<(), Error> {
    let owner = match caller.user() {
        Ok(user) => repo::members::get(tx, tenant, user)
            .await?
            .is_some_and(|m| m.role.is_owner()),
        Err(_) => false,
    };
    if owner {
        Ok(())
    } else {
        Err(Error::forbidden(format!(
            "only an owner of the tenant can {what}"
        )))
    }
}

async fn find_member(tx: &mut Tx, tenant: TenantId, user: UserId) -> Result<Membership, Error> {
    repo::members::get(tx, tenant, user)
        .await?
        .ok_or_else(|| Error::not_found("member", user))
}

impl Memberships {
    #[tracing::instrument(skip_all, fields(tenant_id = %request.get_ref().tenant_id))]
    async fn invite(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<pb::Invitation, Error> {
        let caller = Caller::from_request(&request)?;
        let input = NewInvitationInput::try_from(request.into_inner())?;
        let tenant = caller.tenant_with(input.tenant, perms::INVITATION_CREATE)?;
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        repo::tenants::lock(&mut tx, tenant)
            .await?
            .state
            .require_active()?;
        if input.role.is_owner() {
            require_owner(&mut tx, tenant, &caller, "invite an owner").await?;
        }
        let (token, stored) = InvitationToken::generate(tenant);
        let ttl = ctx.settings.invitation_ttl();
        let invitation = repo::invitations::insert(
            &mut tx,
            NewInvitation {
                tenant,
                email: &input.email,
                role: &input.role,
                token_hash: &stored.hash,
                invited_by: &caller.claims.sub,
                expires_at: Utc::now() + ttl,
            },
        )
        .await?;
        ctx.outbox
            .enqueue(
                &mut tx,
                events::invitation_created(&invitation, &token, &caller)?,
            )
            .await?;
        tx.commit().await?;
        Ok(convert::invitation(&invitation, Some(token), Utc::now()))
    }

    /// The invitee (any user, with a token not yet scoped to the tenant) redeems the invitation
    /// once, before it expires, and becomes a member with the invited role.
    #[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
    async fn accept(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<pb::Membership, Error> {
        let caller = Caller::from_request(&request)?;
        let user = caller.user()?;
        let presented = InvitationToken::parse("token", &request.get_ref().token)?;
        let tenant = presented.tenant;
        tracing::Span::current().record("tenant_id", tracing::field::display(tenant));
        let not_found = || {
            Error::new(
                keel_kernel::ErrorCode::NotFound,
                "no invitation has this token",
            )
        };
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        // The tenant first, as every membership change does, so concurrent changes queue up.
        let state = match repo::tenants::lock(&mut tx, tenant).await {
            Ok(locked) => locked.state,
            Err(err) if err.code() == keel_kernel::ErrorCode::NotFound => return Err(not_found()),
            Err(err) => return Err(err),
        };
        let invitation = repo::invitations::find_for_update(&mut tx, tenant, &presented.hash)
            .await?
            .ok_or_else(not_found)?;
        invitation.check_redeemable(Utc::now())?;
        state.require_active()?;
        if repo::members::get(&mut tx, tenant, user).await?.is_some() {
            return Err(Error::conflict("you are already a member of this tenant"));
        }
        repo::invitations::mark_accepted(&mut tx, tenant, invitation.id, user).await?;
        let version = repo::tenants::next_members_version(&mut tx, tenant).await?;
        let member =
            repo::members::insert(&mut tx, tenant, user, &invitation.role, &invitation.email)
                .await?;
        ctx.outbox
            .enqueue(&mut tx, events::member_added(&member, version, &caller)?)
            .await?;
        tx.commit().await?;
        Ok((&member).into())
    }

    async fn list(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<pb::ListMembersResponse, Error> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let tenant = tenant_id("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, perms::MEMBER_READ)?;
        let size = page_size(request.page_size)?;
        let after = decode_time_id(&request.page_token)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let rows = repo::members::list(&mut tx, tenant, after, size + 1).await?;
        let (members, next_page_token) = split_page(rows, size, |m| {
            encode_time_id(m.created_at, m.user_id.as_uuid())
        });
        Ok(pb::ListMembersResponse {
            members: members.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    async fn get(&self, request: Request<pb::GetMemberRequest>) -> Result<pb::Membership, Error> {
        let caller = Caller::from_request(&request)?;
        let (tenant, user) =
            member_target(&request.get_ref().tenant_id, &request.get_ref().user_id)?;
        let tenant = caller.tenant_with(tenant, perms::MEMBER_READ)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        Ok((&find_member(&mut tx, tenant, user).await?).into())
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.get_ref().tenant_id))]
    async fn update(
        &self,
        request: Request<pb::UpdateMemberRequest>,
    ) -> Result<pb::Membership, Error> {
        let caller = Caller::from_request(&request)?;
        let change = RoleChange::try_from(request.into_inner())?;
        let tenant = caller.tenant_with(change.tenant, perms::MEMBER_UPDATE)?;
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        repo::tenants::lock(&mut tx, tenant)
            .await?
            .state
            .require_active()?;
        let member = find_member(&mut tx, tenant, change.user).await?;
        if member.role == change.role {
            return Ok((&member).into());
        }
        if member.role.is_owner() || change.role.is_owner() {
            require_owner(
                &mut tx,
                tenant,
                &caller,
                "grant or take away the owner role",
            )
            .await?;
        }
        let owners = repo::members::count_owners(&mut tx, tenant).await?;
        keep_an_owner(&member, Some(&change.role), owners)?;
        let updated = repo::members::set_role(&mut tx, tenant, change.user, &change.role).await?;
        let version = repo::tenants::next_members_version(&mut tx, tenant).await?;
        ctx.outbox
            .enqueue(
                &mut tx,
                events::member_role_changed(&updated, &member.role, version, &caller)?,
            )
            .await?;
        tx.commit().await?;
        Ok((&updated).into())
    }

    /// Members may always leave on their own; removing someone else needs the permission, and
    /// removing an owner needs an owner.
    #[tracing::instrument(skip_all, fields(tenant_id = %request.get_ref().tenant_id))]
    async fn remove(&self, request: Request<pb::RemoveMemberRequest>) -> Result<(), Error> {
        let caller = Caller::from_request(&request)?;
        let (tenant, user) =
            member_target(&request.get_ref().tenant_id, &request.get_ref().user_id)?;
        let leaving = caller.user().is_ok_and(|me| me == user);
        let tenant = if leaving {
            caller.tenant(tenant)?
        } else {
            caller.tenant_with(tenant, perms::MEMBER_REMOVE)?
        };
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        repo::tenants::lock(&mut tx, tenant)
            .await?
            .state
            .require_active()?;
        let member = find_member(&mut tx, tenant, user).await?;
        if member.role.is_owner() && !leaving {
            require_owner(&mut tx, tenant, &caller, "remove an owner").await?;
        }
        let owners = repo::members::count_owners(&mut tx, tenant).await?;
        keep_an_owner(&member, None, owners)?;
        repo::members::delete(&mut tx, tenant, user).await?;
        let version = repo::tenants::next_members_version(&mut tx, tenant).await?;
        ctx.outbox
            .enqueue(&mut tx, events::member_removed(&member, version, &caller)?)
            .await?;
        tx.commit().await?;
        tracing::info!(user_id = %user, "member removed");
        Ok(())
    }
}

#[tonic::async_trait]
impl MembershipService for Memberships {
    async fn create_invitation(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        self.0.reply(self.invite(request).await)
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        self.0.reply(self.accept(request).await)
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        self.0.reply(self.list(request).await)
    }

    async fn get_member(
        &self,
        request: Request<pb::GetMemberRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        self.0.reply(self.get(request).await)
    }

    async fn update_member(
        &self,
        request: Request<pb::UpdateMemberRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        self.0.reply(self.update(request).await)
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<()>, Status> {
        self.0.reply(self.remove(request).await)
    }
}
