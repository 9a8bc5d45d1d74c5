//! ModuleService: the module catalogue, per-tenant modules and flags, and entitlements.

use keel_kernel::grpc::paging::{Rank, split_page};
use keel_kernel::grpc::{PageSize, PageToken};
use keel_kernel::{Caller, Error, TenantId, db};
use keel_proto::tenancy::v1 as pb;
use keel_proto::tenancy::v1::module_service_server::ModuleService;
use tonic::{Request, Response, Status};

use super::Shared;
use super::convert::{flag_target, module_target};
use crate::domain::permissions;
use crate::{events, repo};

pub struct Modules(pub Shared);

impl Modules {
    /// Any authenticated caller may read the catalogue: it is the platform's price list.
    async fn catalogue(
        &self,
        request: pb::ListModulesRequest,
    ) -> Result<pb::ListModulesResponse, Error> {
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<Rank>(&request.page_token)?;
        let mut tx = db::unscoped_tx(&self.0.db).await?;
        let rows = repo::modules::catalogue(&mut tx, after, size.fetch_limit()).await?;
        let (modules, next_page_token) = split_page(rows, size, |m| Rank(m.position));
        Ok(pb::ListModulesResponse {
            modules: modules.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    /// Turn a module on or off; an event and a new entitlements version only when it changed.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, module = %module, enabled))]
    async fn toggle(
        &self,
        caller: &Caller,
        tenant: &str,
        module: &str,
        enabled: bool,
    ) -> Result<pb::TenantModule, Error> {
        let (tenant, module) = module_target(tenant, module)?;
        let tenant = caller.tenant_with(tenant, permissions::MODULE_MANAGE)?;
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        repo::tenants::lock(&mut tx).await?.state.require_active()?;
        if !repo::modules::exists(&mut tx, &module).await? {
            return Err(Error::not_found("module", &module));
        }
        let (setting, changed) = repo::modules::set(&mut tx, &module, enabled).await?;
        if changed {
            let version = repo::tenants::bump_entitlements(&mut tx).await?;
            ctx.outbox
                .enqueue(
                    &mut tx,
                    events::module_toggled(tenant, &module, enabled, version, caller)?,
                )
                .await?;
        }
        tx.commit().await?;
        Ok((&setting).into())
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn set_flag(
        &self,
        caller: &Caller,
        request: pb::SetFeatureFlagRequest,
    ) -> Result<pb::FeatureFlag, Error> {
        let (tenant, flag) = flag_target(&request.tenant_id, &request.flag)?;
        let tenant = caller.tenant_with(tenant, permissions::FLAG_MANAGE)?;
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        repo::tenants::lock(&mut tx).await?.state.require_active()?;
        let flag = repo::modules::set_flag(&mut tx, &flag, request.enabled).await?;
        repo::tenants::bump_entitlements(&mut tx).await?;
        tx.commit().await?;
        Ok((&flag).into())
    }

    /// The tenant's own token, or a platform principal (the gateway, other services) reading any
    /// tenant's entitlements.
    async fn entitlements(
        &self,
        caller: &Caller,
        request: pb::GetEntitlementsRequest,
    ) -> Result<pb::Entitlements, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_or_platform(tenant, permissions::TENANT_READ_ANY)?;
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let row = repo::tenants::get(&mut tx)
            .await?
            .ok_or_else(|| Error::not_found("tenant", tenant))?;
        let enabled_modules = repo::modules::enabled(&mut tx).await?;
        let mut flags = ctx.settings.flag_defaults.clone();
        flags.extend(repo::modules::flag_overrides(&mut tx).await?);
        tx.commit().await?;
        Ok(pb::Entitlements {
            tenant_id: tenant.to_string(),
            state: pb::TenantState::from(row.state) as i32,
            plan: row.plan,
            enabled_modules,
            flags: flags.into_iter().collect(),
            version: row.entitlements_version,
        })
    }
}

#[tonic::async_trait]
impl ModuleService for Modules {
    async fn list_modules(
        &self,
        request: Request<pb::ListModulesRequest>,
    ) -> Result<Response<pb::ListModulesResponse>, Status> {
        // Authenticated, with no further check (see `catalogue`).
        Caller::from_request(&request)?;
        Ok(Response::new(self.catalogue(request.into_inner()).await?))
    }

    async fn enable_module(
        &self,
        request: Request<pb::EnableModuleRequest>,
    ) -> Result<Response<pb::TenantModule>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let enable = self.toggle(&caller, &request.tenant_id, &request.module, true);
        Ok(Response::new(enable.await?))
    }

    async fn disable_module(
        &self,
        request: Request<pb::DisableModuleRequest>,
    ) -> Result<Response<pb::TenantModule>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let disable = self.toggle(&caller, &request.tenant_id, &request.module, false);
        Ok(Response::new(disable.await?))
    }

    async fn set_feature_flag(
        &self,
        request: Request<pb::SetFeatureFlagRequest>,
    ) -> Result<Response<pb::FeatureFlag>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.set_flag(&caller, request.into_inner()).await?,
        ))
    }

    async fn get_entitlements(
        &self,
        request: Request<pb::GetEntitlementsRequest>,
    ) -> Result<Response<pb::Entitlements>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.entitlements(&caller, request.into_inner()).await?,
        ))
    }
}
