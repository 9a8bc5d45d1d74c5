//! MembershipService: invitations and members.

use chrono::Utc;
use keel_kernel::auth::PrincipalKind;
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::{TimeId, split_page};
use keel_kernel::grpc::{PageSize, PageToken};
use keel_kernel::idempotency::{Claim, IdempotencyKey, Scope};
use keel_kernel::{Caller, Error, ErrorCode, TenantId, UserId, db};
use keel_proto::tenancy::v1 as pb;
use keel_proto::tenancy::v1::membership_service_server::MembershipService;
use tonic::{Request, Response, Status};

use super::Shared;
use super::convert::{self, NewInvitationInput, RoleChange, member_target};
use crate::domain::member::{keep_an_owner, refuse_own_role_change, require_may_grant};
use crate::domain::{InvitationId, InvitationToken, Membership, permissions};
use crate::repo::invitations::NewInvitation;
use crate::{events, repo};

pub struct Memberships(pub Shared);

/// AUTHZ unless `caller` is an owner of the tenant: granting or taking away the owner role is for
/// owners only, whatever permissions the token carries. Decided from tenancy's own records.
async fn require_owner(tx: &mut TenantTx, caller: &Caller, what: &str) -> Result<(), Error> {
    let owner = match caller.user() {
        Ok(user) => repo::members::get(tx, user)
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

async fn find_member(tx: &mut TenantTx, user: UserId) -> Result<Membership, Error> {
    repo::members::get(tx, user)
        .await?
        .ok_or_else(|| Error::not_found("member", user))
}

impl Memberships {
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn invite(
        &self,
        caller: &Caller,
        request: pb::CreateInvitationRequest,
    ) -> Result<pb::Invitation, Error> {
        let hashed = request.clone();
        let input = NewInvitationInput::try_from(request)?;
        let tenant = caller.tenant_with(input.tenant, permissions::INVITATION_CREATE)?;
        require_may_grant(&caller.claims, &input.role)?;
        let retry_key = IdempotencyKey::from_request(
            "tenancy.CreateInvitation",
            Scope::Tenant(tenant),
            "",
            &caller.meta,
            &hashed,
        )?;
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        if let Some(retry_key) = &retry_key
            && let Claim::Replay(first) = retry_key.claim::<pb::Invitation>(&mut tx).await?
        {
            // The first invitation, without its token: tokens are stored only hashed.
            return Ok(first);
        }
        let locked = repo::tenants::lock(&mut tx).await?;
        locked.state.require_active()?;
        if input.role.is_owner() {
            require_owner(&mut tx, caller, "invite an owner").await?;
        }
        let (token, stored) = InvitationToken::generate(tenant);
        let ttl = ctx.settings.invitation_ttl();
        let invitation = repo::invitations::insert(
            &mut tx,
            NewInvitation {
                email: &input.email,
                role: &input.role,
                token_hash: &stored.hash,
                invited_by: &caller.actor(),
                expires_at: Utc::now() + ttl,
            },
        )
        .await?;
        ctx.outbox
            .enqueue(
                &mut tx,
                events::invitation_created(&invitation, &locked.default_locale, caller)?,
            )
            .await?;
        if let Some(retry_key) = &retry_key {
            retry_key
                .complete(&mut tx, &convert::invitation(&invitation, None, Utc::now()))
                .await?;
        }
        tx.commit().await?;
        Ok(convert::invitation(&invitation, Some(token), Utc::now()))
    }

    /// The invitee (a user whose verified email is the invited address, with a token not yet
    /// scoped to the tenant) redeems the invitation once, before it expires, and becomes a member
    /// with the invited role.
    #[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
    async fn accept(
        &self,
        caller: &Caller,
        request: pb::AcceptInvitationRequest,
    ) -> Result<pb::Membership, Error> {
        let user = caller.user()?;
        let presented = InvitationToken::parse("token", &request.token)?;
        let tenant = presented.tenant;
        tracing::Span::current().record("tenant_id", tracing::field::display(tenant));
        let not_found = || Error::new(ErrorCode::NotFound, "no invitation has this token");
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        // The tenant first, as every membership change does, so concurrent changes queue up.
        let state = match repo::tenants::lock(&mut tx).await {
            Ok(locked) => locked.state,
            Err(err) if err.code() == ErrorCode::NotFound => return Err(not_found()),
            Err(err) => return Err(err),
        };
        let invitation = repo::invitations::find_for_update(&mut tx, &presented.hash)
            .await?
            .ok_or_else(not_found)?;
        // Before the invitation's state: someone else holding the token learns nothing of it.
        let email = invitation.check_invitee(&caller.claims)?;
        invitation.check_redeemable(Utc::now())?;
        state.require_active()?;
        if repo::members::get(&mut tx, user).await?.is_some() {
            return Err(Error::conflict("you are already a member of this tenant"));
        }
        repo::invitations::mark_accepted(&mut tx, invitation.id, user).await?;
        let version = repo::tenants::next_members_version(&mut tx).await?;
        let member = repo::members::insert(&mut tx, user, &invitation.role, &email).await?;
        ctx.outbox
            .enqueue(&mut tx, events::member_added(&member, version, caller)?)
            .await?;
        tx.commit().await?;
        Ok((&member).into())
    }

    /// A fresh token for a pending invitation, for the service that emails the link. Services
    /// only: a user or API key holding `*` (an owner) covers the permission's name, but a person
    /// who wants to hand out an invitation has the one CreateInvitation answered with.
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn issue_token(
        &self,
        caller: &Caller,
        request: pb::IssueInvitationTokenRequest,
    ) -> Result<pb::Invitation, Error> {
        if caller.claims.kind != PrincipalKind::Service {
            return Err(Error::forbidden(
                "invitation tokens are issued to services only; people get theirs from CreateInvitation",
            ));
        }
        caller.require(permissions::INVITATION_TOKEN_ISSUE)?;
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let id = InvitationId::parse_field("invitation_id", &request.invitation_id)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let invitation = repo::invitations::find_by_id_for_update(&mut tx, id)
            .await?
            .ok_or_else(|| Error::not_found("invitation", id))?;
        invitation.check_redeemable(Utc::now())?;
        let (token, stored) = InvitationToken::generate(tenant);
        repo::invitations::replace_token(&mut tx, id, &stored.hash).await?;
        tx.commit().await?;
        Ok(convert::invitation(&invitation, Some(token), Utc::now()))
    }

    async fn list(
        &self,
        caller: &Caller,
        request: pb::ListMembersRequest,
    ) -> Result<pb::ListMembersResponse, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::MEMBER_READ)?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<TimeId>(&request.page_token)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let rows = repo::members::list(&mut tx, after, size.fetch_limit()).await?;
        let (members, next_page_token) = split_page(rows, size, |m| TimeId {
            at: m.created_at,
            id: m.user_id.as_uuid(),
        });
        Ok(pb::ListMembersResponse {
            members: members.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    async fn get(
        &self,
        caller: &Caller,
        request: pb::GetMemberRequest,
    ) -> Result<pb::Membership, Error> {
        let (tenant, user) = member_target(&request.tenant_id, &request.user_id)?;
        let tenant = caller.tenant_with(tenant, permissions::MEMBER_READ)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        Ok((&find_member(&mut tx, user).await?).into())
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn update(
        &self,
        caller: &Caller,
        request: pb::UpdateMemberRequest,
    ) -> Result<pb::Membership, Error> {
        let change = RoleChange::try_from(request)?;
        let tenant = caller.tenant_with(change.tenant, permissions::MEMBER_UPDATE)?;
        refuse_own_role_change(caller.user().ok(), change.user)?;
        require_may_grant(&caller.claims, &change.role)?;
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        repo::tenants::lock(&mut tx).await?.state.require_active()?;
        let member = find_member(&mut tx, change.user).await?;
        if member.role == change.role {
            return Ok((&member).into());
        }
        // Taking a role away needs its rights too: nobody reshapes the role of someone who can do
        // more than they can.
        require_may_grant(&caller.claims, &member.role)?;
        // The token's `*` is not enough for the owner role: an owner demoted a moment ago still
        // holds an owner's token until it expires. Tenancy's own records, read under the tenant's
        // lock, decide; concurrent changes queue on that lock, so none lands after a demotion.
        if member.role.is_owner() || change.role.is_owner() {
            require_owner(&mut tx, caller, "grant or take away the owner role").await?;
        }
        let owners = repo::members::count_owners(&mut tx).await?;
        keep_an_owner(&member, Some(&change.role), owners)?;
        let updated = repo::members::set_role(&mut tx, change.user, &change.role).await?;
        let version = repo::tenants::next_members_version(&mut tx).await?;
        ctx.outbox
            .enqueue(
                &mut tx,
                events::member_role_changed(&updated, &member.role, version, caller)?,
            )
            .await?;
        tx.commit().await?;
        Ok((&updated).into())
    }

    /// Members may always leave on their own; removing someone else needs the permission, and
    /// removing an owner needs an owner.
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn remove(&self, caller: &Caller, request: pb::RemoveMemberRequest) -> Result<(), Error> {
        let (tenant, user) = member_target(&request.tenant_id, &request.user_id)?;
        let leaving = caller.user().is_ok_and(|me| me == user);
        let tenant = if leaving {
            caller.tenant(tenant)?
        } else {
            caller.tenant_with(tenant, permissions::MEMBER_REMOVE)?
        };
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        repo::tenants::lock(&mut tx).await?.state.require_active()?;
        let member = find_member(&mut tx, user).await?;
        if member.role.is_owner() && !leaving {
            require_owner(&mut tx, caller, "remove an owner").await?;
        }
        let owners = repo::members::count_owners(&mut tx).await?;
        keep_an_owner(&member, None, owners)?;
        repo::members::delete(&mut tx, user).await?;
        let version = repo::tenants::next_members_version(&mut tx).await?;
        ctx.outbox
            .enqueue(&mut tx, events::member_removed(&member, version, caller)?)
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
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.invite(&caller, request.into_inner()).await?,
        ))
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.accept(&caller, request.into_inner()).await?,
        ))
    }

    async fn issue_invitation_token(
        &self,
        request: Request<pb::IssueInvitationTokenRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.issue_token(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list(&caller, request.into_inner()).await?,
        ))
    }

    async fn get_member(
        &self,
        request: Request<pb::GetMemberRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.get(&caller, request.into_inner()).await?,
        ))
    }

    async fn update_member(
        &self,
        request: Request<pb::UpdateMemberRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.update(&caller, request.into_inner()).await?,
        ))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.remove(&caller, request.into_inner()).await?,
        ))
    }
}
