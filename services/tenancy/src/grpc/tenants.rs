//! TenantService: provisioning and lifecycle.

use keel_kernel::grpc::paging::{TimeId, split_page};
use keel_kernel::grpc::{PageSize, PageToken};
use keel_kernel::idempotency::{Claim, IdempotencyKey, Scope};
use keel_kernel::{Caller, Error, TenantId, Violations, db};
use keel_proto::tenancy::v1 as pb;
use keel_proto::tenancy::v1::tenant_service_server::TenantService;
use tonic::{Request, Response, Status};

use super::Shared;
use super::convert::state_filter;
use crate::domain::{
    Lifecycle, NewTenant, Role, Tenant, TenantChanges, TenantName, parse_locale, permissions,
};
use crate::{events, repo};

pub struct Tenants(pub Shared);

/// The tenant fields UpdateTenant may change.
const UPDATABLE: &[&str] = &["name", "default_locale"];

impl Tenants {
    #[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
    async fn create(
        &self,
        caller: &Caller,
        request: pb::CreateTenantRequest,
    ) -> Result<pb::Tenant, Error> {
        let creator = caller.user()?;
        // Keys are the creator's: the tenant does not exist yet.
        let retry_key = IdempotencyKey::from_request(
            "tenancy.CreateTenant",
            Scope::Principal(creator.to_string()),
            "",
            &caller.meta,
            &request,
        )?;
        let new = NewTenant::try_from(request)?;
        let id = TenantId::new();
        tracing::Span::current().record("tenant_id", tracing::field::display(id));
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, id).await?;
        if let Some(retry_key) = &retry_key
            && let Claim::Replay(first) = retry_key.claim::<pb::Tenant>(&mut tx).await?
        {
            return Ok(first);
        }
        let mut tenant =
            repo::tenants::insert(&mut tx, &new, &ctx.settings.default_plan, creator).await?;
        repo::modules::init_for_tenant(&mut tx).await?;
        let version = repo::tenants::next_members_version(&mut tx).await?;
        let owner = repo::members::insert(&mut tx, creator, &Role::Owner, "").await?;
        let created_version = tenant.version;
        if ctx.settings.auto_approve {
            let state = Lifecycle::Approve.apply_to(tenant.state)?;
            tenant = repo::tenants::set_state(&mut tx, state, None).await?;
        }
        // TenantCreated reports the state the tenant starts in (ACTIVE when approval is
        // automatic), at the version it was created with; the approval follows as its own event.
        let created = Tenant {
            version: created_version,
            ..tenant.clone()
        };
        ctx.outbox
            .enqueue(&mut tx, events::tenant_created(&created, caller)?)
            .await?;
        ctx.outbox
            .enqueue(&mut tx, events::member_added(&owner, version, caller)?)
            .await?;
        if ctx.settings.auto_approve {
            ctx.outbox
                .enqueue(&mut tx, events::tenant_approved(&tenant, None, caller)?)
                .await?;
        }
        let answer = pb::Tenant::from(&tenant);
        if let Some(retry_key) = &retry_key {
            retry_key.complete(&mut tx, &answer).await?;
        }
        tx.commit().await?;
        tracing::info!(slug = %tenant.slug, state = ?tenant.state, "tenant created");
        Ok(answer)
    }

    async fn list(
        &self,
        caller: &Caller,
        request: pb::ListTenantsRequest,
    ) -> Result<pb::ListTenantsResponse, Error> {
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<TimeId>(&request.page_token)?;
        let state = state_filter("state", request.state)?;
        let rows = if request.all_tenants {
            caller.platform(permissions::TENANT_READ_ANY)?;
            let mut tx = db::unscoped_tx(&self.0.db).await?;
            repo::tenants::list_all(&mut tx, state, after, size.fetch_limit()).await?
        } else {
            let user = caller.user()?;
            let mut tx = db::user_tx(&self.0.db, user).await?;
            repo::tenants::list_for_user(&mut tx, user, state, after, size.fetch_limit()).await?
        };
        let (tenants, next_page_token) = split_page(rows, size, |t| TimeId {
            at: t.created_at,
            id: t.id.as_uuid(),
        });
        Ok(pb::ListTenantsResponse {
            tenants: tenants.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    /// A tenant-scoped token sees its own tenant; an unscoped one sees the user's tenants (a
    /// pending tenant is visible only this way, to its owner), or any tenant for a platform reader.
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn get(
        &self,
        caller: &Caller,
        request: pb::GetTenantRequest,
    ) -> Result<pb::Tenant, Error> {
        let id = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let ctx = &self.0;
        if caller.claims.tid.is_some() {
            caller.tenant(id)?;
        } else if !caller.is_platform(permissions::TENANT_READ_ANY) {
            let user = caller.user()?;
            let mut tx = db::user_tx(&ctx.db, user).await?;
            if !repo::members::is_member(&mut tx, id, user).await? {
                return Err(Error::not_found("tenant", id));
            }
        }
        let mut tx = db::tenant_tx(&ctx.db, id).await?;
        let tenant = repo::tenants::get(&mut tx)
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
        let current = repo::tenants::lock(&mut tx).await?;
        let next = action.apply_to(current.state)?;
        let tenant = repo::tenants::set_state(&mut tx, next, reason).await?;
        let event = match action {
            Lifecycle::Approve => events::tenant_approved(&tenant, Some(&caller.actor()), caller)?,
            Lifecycle::Suspend => events::tenant_suspended(&tenant, caller)?,
            Lifecycle::Reactivate => events::tenant_reactivated(&tenant, caller)?,
            Lifecycle::Delete => events::tenant_deleted(&tenant, caller)?,
        };
        ctx.outbox.enqueue(&mut tx, event).await?;
        tx.commit().await?;
        tracing::info!(state = ?tenant.state, "tenant lifecycle changed");
        Ok((&tenant).into())
    }

    /// Approve, suspend or reactivate: platform admins only.
    async fn platform_transition(
        &self,
        caller: &Caller,
        tenant: &str,
        permission: &str,
        action: Lifecycle,
        reason: Option<&str>,
    ) -> Result<pb::Tenant, Error> {
        caller.platform(permission)?;
        let id = TenantId::parse_field("tenant_id", tenant)?;
        self.transition(caller, id, action, reason).await
    }

    /// Rename the tenant or set its default language, under its lock, announcing the result.
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn update(
        &self,
        caller: &Caller,
        request: pb::UpdateTenantRequest,
    ) -> Result<pb::Tenant, Error> {
        let id = caller.tenant_with(
            TenantId::parse_field("tenant_id", &request.tenant_id)?,
            permissions::TENANT_UPDATE,
        )?;
        let paths = request
            .update_mask
            .as_ref()
            .map(|mask| mask.paths.clone())
            .unwrap_or_default();
        if let Some(other) = paths.iter().find(|p| !UPDATABLE.contains(&p.as_str())) {
            return Err(Error::invalid(
                "update_mask",
                format!(
                    "{other} cannot be updated; only {} can",
                    UPDATABLE.join(" and ")
                ),
            ));
        }
        // AIP-134: an empty mask means every updatable field.
        let wants = |field: &str| paths.is_empty() || paths.iter().any(|p| p == field);
        let given = request
            .tenant
            .ok_or_else(|| Error::invalid("tenant", "is required"))?;
        let mut violations = Violations::default();
        let changes = TenantChanges {
            name: match wants("name") {
                true => violations.check(TenantName::parse("tenant.name", &given.name)),
                false => None,
            },
            default_locale: match wants("default_locale") {
                true => {
                    violations.check(parse_locale("tenant.default_locale", &given.default_locale))
                }
                false => None,
            },
        };
        violations.finish()?;
        let ctx = &self.0;
        let mut tx = db::tenant_tx(&ctx.db, id).await?;
        repo::tenants::lock(&mut tx).await?.state.require_active()?;
        let tenant = repo::tenants::update(&mut tx, &changes).await?;
        ctx.outbox
            .enqueue(&mut tx, events::tenant_updated(&tenant, caller)?)
            .await?;
        tx.commit().await?;
        Ok((&tenant).into())
    }

    async fn delete(
        &self,
        caller: &Caller,
        request: pb::DeleteTenantRequest,
    ) -> Result<pb::Tenant, Error> {
        let id = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        if !caller.is_platform(permissions::TENANT_DELETE) {
            caller.tenant_with(id, permissions::TENANT_DELETE)?;
        }
        self.transition(caller, id, Lifecycle::Delete, None).await
    }
}

#[tonic::async_trait]
impl TenantService for Tenants {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.create(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list(&caller, request.into_inner()).await?,
        ))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.get(&caller, request.into_inner()).await?,
        ))
    }

    async fn approve_tenant(
        &self,
        request: Request<pb::ApproveTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let approve = self.platform_transition(
            &caller,
            &request.tenant_id,
            permissions::TENANT_APPROVE,
            Lifecycle::Approve,
            None,
        );
        Ok(Response::new(approve.await?))
    }

    async fn suspend_tenant(
        &self,
        request: Request<pb::SuspendTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let suspend = self.platform_transition(
            &caller,
            &request.tenant_id,
            permissions::TENANT_SUSPEND,
            Lifecycle::Suspend,
            Some(request.reason.trim()),
        );
        Ok(Response::new(suspend.await?))
    }

    async fn reactivate_tenant(
        &self,
        request: Request<pb::ReactivateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let reactivate = self.platform_transition(
            &caller,
            &request.tenant_id,
            permissions::TENANT_REACTIVATE,
            Lifecycle::Reactivate,
            None,
        );
        Ok(Response::new(reactivate.await?))
    }

    async fn update_tenant(
        &self,
        request: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.update(&caller, request.into_inner()).await?,
        ))
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.delete(&caller, request.into_inner()).await?,
        ))
    }
}
