//! TenantService: provisioning and lifecycle.

use keel_kernel::{Error, TenantId, db};
use keel_proto::tenancy::v1 as pb;
use keel_proto::tenancy::v1::tenant_service_server::TenantService;
use tonic::{Request, Response, Status};

use super::Shared;
use super::convert::{state_filter, tenant_id};
use super::page::{decode_time_id, encode_time_id, page_size, split_page};
use crate::domain::access::perms;
use crate::domain::member::Role;
use crate::domain::tenant::NewTenant;
use crate::domain::{Caller, Lifecycle, Tenant};
use crate::{events, repo};

pub struct Tenants(pub Shared);

impl Tenants {
    #[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
    async fn create(&self, request: Request<pb::CreateTenantRequest>) -> Result<pb::Tenant, Error> {
        let caller = Caller::from_request(&request)?;
        let creator = caller.user()?;
        let new = NewTenant::try_from(request.into_inner())?;
        let id = TenantId::new();
        tracing::Span::current().record("tenant_id", tracing::field::display(id));
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, id).await?;
        let mut tenant =
            repo::tenants::insert(&mut tx, id, &new, &ctx.settings.default_plan, creator).await?;
        repo::modules::init_for_tenant(&mut tx, id).await?;
        let version = repo::tenants::next_members_version(&mut tx, id).await?;
        let owner = repo::members::insert(&mut tx, id, creator, &Role::Owner, "").await?;
        let created_version = tenant.version;
        if ctx.settings.auto_approve {
            let state = tenant.state.apply(Lifecycle::Approve)?;
            tenant = repo::tenants::set_state(&mut tx, id, state, None).await?;
        }
        // TenantCreated reports the state the tenant starts in (ACTIVE when approval is
        // automatic), at the version it was created with; the approval follows as its own event.
        let created = Tenant {
            version: created_version,
            ..tenant.clone()
        };
        ctx.outbox
            .enqueue(&mut tx, events::tenant_created(&created, &caller)?)
            .await?;
        ctx.outbox
            .enqueue(&mut tx, events::member_added(&owner, version, &caller)?)
            .await?;
        if ctx.settings.auto_approve {
            ctx.outbox
                .enqueue(&mut tx, events::tenant_approved(&tenant, None, &caller)?)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(slug = %tenant.slug, state = tenant.state.as_str(), "tenant created");
        Ok((&tenant).into())
    }

    async fn list(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<pb::ListTenantsResponse, Error> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let size = page_size(request.page_size)?;
        let after = decode_time_id(&request.page_token)?;
        let state = state_filter("state", request.state)?;
        let rows = if request.all_tenants {
            caller.platform(perms::TENANT_READ_ANY)?;
            let mut tx = db::unscoped_tx(&self.0.db).await?;
            repo::tenants::list_all(&mut tx, state, after, size + 1).await?
        } else {
            let user = caller.user()?;
            let mut tx = db::user_tx(&self.0.db, user).await?;
            repo::tenants::list_for_user(&mut tx, user, state, after, size + 1).await?
        };
        let (tenants, next_page_token) =
            split_page(rows, size, |t| encode_time_id(t.created_at, t.id.as_uuid()));
        Ok(pb::ListTenantsResponse {
            tenants: tenants.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    /// A tenant-scoped token sees its own tenant; an unscoped one sees the user's tenants (a
    /// pending tenant is visible only this way, to its owner), or any tenant for a platform reader.
    #[tracing::instrument(skip_all, fields(tenant_id = %request.get_ref().tenant_id))]
    async fn get(&self, request: Request<pb::GetTenantRequest>) -> Result<pb::Tenant, Error> {
        let caller = Caller::from_request(&request)?;
        let id = tenant_id("tenant_id", &request.get_ref().tenant_id)?;
        let ctx = &self.0;
        if caller.claims.tid.is_some() {
            caller.tenant(id)?;
        } else if !caller.is_platform(perms::TENANT_READ_ANY) {
            let user = caller.user()?;
            let mut tx = db::user_tx(&ctx.db, user).await?;
            if !repo::members::is_member(&mut tx, id, user).await? {
                return Err(Error::not_found("tenant", id));
            }
        }
        let mut tx = db::tenant_tx(&ctx.db, id).await?;
        let tenant = repo::tenants::get(&mut tx, id)
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))?;
        Ok((&tenant).into())
    }

    /// Apply a lifecycle action under the tenant's lock and publish its event.
    #[tracing::instrument(skip_all, fields(tenant_id = %id, action = ?action))]
    async fn transition(
        &self,
        caller: &Caller,
        id: TenantId,
        action: Lifecycle,
        reason: Option<&str>,
    ) -> Result<pb::Tenant, Error> {
        let ctx = &self.0;
        let mut tx = db::tenant_tx(&ctx.db, id).await?;
        let current = repo::tenants::lock(&mut tx, id).await?;
        let next = current.state.apply(action)?;
        let tenant = repo::tenants::set_state(&mut tx, id, next, reason).await?;
        let event = match action {
            Lifecycle::Approve => {
                events::tenant_approved(&tenant, Some(&caller.claims.sub), caller)?
            }
            Lifecycle::Suspend => events::tenant_suspended(&tenant, caller)?,
            Lifecycle::Reactivate => events::tenant_reactivated(&tenant, caller)?,
            Lifecycle::Delete => events::tenant_deleted(&tenant, caller)?,
        };
        ctx.outbox.enqueue(&mut tx, event).await?;
        tx.commit().await?;
        tracing::info!(state = tenant.state.as_str(), "tenant lifecycle changed");
        Ok((&tenant).into())
    }

    /// Approve, suspend or reactivate: platform admins only.
    async fn platform_transition(
        &self,
        caller: Result<Caller, Error>,
        tenant: &str,
        permission: &str,
        action: Lifecycle,
        reason: Option<&str>,
    ) -> Result<pb::Tenant, Error> {
        let caller = caller?;
        caller.platform(permission)?;
        let id = tenant_id("tenant_id", tenant)?;
        self.transition(&caller, id, action, reason).await
    }

    async fn delete(&self, request: Request<pb::DeleteTenantRequest>) -> Result<pb::Tenant, Error> {
        let caller = Caller::from_request(&request)?;
        let id = tenant_id("tenant_id", &request.get_ref().tenant_id)?;
        if !caller.is_platform(perms::TENANT_DELETE) {
            caller.tenant_with(id, perms::TENANT_DELETE)?;
        }
        self.transition(&caller, id, Lifecycle::Delete, None).await
    }
}

#[tonic::async_trait]
impl TenantService for Tenants {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.0.reply(self.create(request).await)
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        self.0.reply(self.list(request).await)
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.0.reply(self.get(request).await)
    }

    async fn approve_tenant(
        &self,
        request: Request<pb::ApproveTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = Caller::from_request(&request);
        let body = request.get_ref();
        let approve = Lifecycle::Approve;
        self.0.reply(
            self.platform_transition(
                caller,
                &body.tenant_id,
                perms::TENANT_APPROVE,
                approve,
                None,
            )
            .await,
        )
    }

    async fn suspend_tenant(
        &self,
        request: Request<pb::SuspendTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = Caller::from_request(&request);
        let body = request.get_ref();
        let (suspend, reason) = (Lifecycle::Suspend, Some(body.reason.trim()));
        self.0.reply(
            self.platform_transition(
                caller,
                &body.tenant_id,
                perms::TENANT_SUSPEND,
                suspend,
                reason,
            )
            .await,
        )
    }

    async fn reactivate_tenant(
        &self,
        request: Request<pb::ReactivateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = Caller::from_request(&request);
        let body = request.get_ref();
        let reactivate = Lifecycle::Reactivate;
        self.0.reply(
            self.platform_transition(
                caller,
                &body.tenant_id,
                perms::TENANT_REACTIVATE,
                reactivate,
                None,
            )
            .await,
        )
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.0.reply(self.delete(request).await)
    }
}
