//! ModuleService: the module catalogue, per-tenant modules and flags, and entitlements.

use keel_kernel::{Error, db};
use keel_proto::tenancy::v1 as pb;
use keel_proto::tenancy::v1::module_service_server::ModuleService;
use tonic::{Request, Response, Status};

use super::Shared;
use super::convert::{flag_target, module_target, state_to_proto, tenant_id};
use super::page::{decode_rank, encode_rank, page_size, split_page};
use crate::domain::Caller;
use crate::domain::access::perms;
use crate::{events, repo};

pub struct Modules(pub Shared);

impl Modules {
    async fn catalogue(
        &self,
        request: Request<pb::ListModulesRequest>,
    ) -> Result<pb::ListModulesResponse, Error> {
        // Any authenticated caller may read the catalogue: it is the platform's price list.
        Caller::from_request(&request)?;
        let request = request.into_inner();
        let size = page_size(request.page_size)?;
        let after = decode_rank(&request.page_token)?;
        let mut tx = db::unscoped_tx(&self.0.db).await?;
        let rows = repo::modules::catalogue(&mut tx, after, size + 1).await?;
        let (modules, next_page_token) = split_page(rows, size, |m| encode_rank(m.position));
        Ok(pb::ListModulesResponse {
            modules: modules.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    /// Turn a module on or off; an event and a new entitlements version only when it changed.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, module = %module, enabled))]
    async fn toggle(
        &self,
        caller: Result<Caller, Error>,
        tenant: &str,
        module: &str,
        enabled: bool,
    ) -> Result<pb::TenantModule, Error> {
        let caller = caller?;
        let (tenant, module) = module_target(tenant, module)?;
        let tenant = caller.tenant_with(tenant, perms::MODULE_MANAGE)?;
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        repo::tenants::lock(&mut tx, tenant)
            .await?
            .state
            .require_active()?;
        if !repo::modules::exists(&mut tx, &module).await? {
            return Err(Error::not_found("module", &module));
        }
        let (setting, changed) = repo::modules::set(&mut tx, tenant, &module, enabled).await?;
        if changed {
            let version = repo::tenants::bump_entitlements(&mut tx, tenant).await?;
            ctx.outbox
                .enqueue(
                    &mut tx,
                    events::module_toggled(tenant, &module, enabled, version, &caller)?,
                )
                .await?;
        }
        tx.commit().await?;
        Ok((&setting).into())
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.get_ref().tenant_id))]
    async fn set_flag(
        &self,
        request: Request<pb::SetFeatureFlagRequest>,
    ) -> Result<pb::FeatureFlag, Error> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let (tenant, flag) = flag_target(&request.tenant_id, &request.flag)?;
        let tenant = caller.tenant_with(tenant, perms::FLAG_MANAGE)?;
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        repo::tenants::lock(&mut tx, tenant)
            .await?
            .state
            .require_active()?;
        let flag = repo::modules::set_flag(&mut tx, tenant, &flag, request.enabled).await?;
        repo::tenants::bump_entitlements(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok((&flag).into())
    }

    /// The tenant's own token, or a platform principal (the gateway, other services) reading any
    /// tenant's entitlements.
    async fn entitlements(
        &self,
        request: Request<pb::GetEntitlementsRequest>,
    ) -> Result<pb::Entitlements, Error> {
        let caller = Caller::from_request(&request)?;
        let tenant = tenant_id("tenant_id", &request.get_ref().tenant_id)?;
        let tenant = caller.tenant_or_platform(tenant, perms::TENANT_READ_ANY)?;
        let ctx = &self.0;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let row = repo::tenants::get(&mut tx, tenant)
            .await?
            .ok_or_else(|| Error::not_found("tenant", tenant))?;
        let enabled_modules = repo::modules::enabled(&mut tx, tenant).await?;
        let mut flags = ctx.settings.flag_defaults.clone();
        flags.extend(repo::modules::flag_overrides(&mut tx, tenant).await?);
        tx.commit().await?;
        Ok(pb::Entitlements {
            tenant_id: tenant.to_string(),
            state: state_to_proto(row.state) as i32,
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
        self.0.reply(self.catalogue(request).await)
    }

    async fn enable_module(
        &self,
        request: Request<pb::EnableModuleRequest>,
    ) -> Result<Response<pb::TenantModule>, Status> {
        let caller = Caller::from_request(&request);
        let body = request.get_ref();
        self.0.reply(
            self.toggle(caller, &body.tenant_id, &body.module, true)
                .await,
        )
    }

    async fn disable_module(
        &self,
        request: Request<pb::DisableModuleRequest>,
    ) -> Result<Response<pb::TenantModule>, Status> {
        let caller = Caller::from_request(&request);
        let body = request.get_ref();
        self.0.reply(
            self.toggle(caller, &body.tenant_id, &body.module, false)
                .await,
        )
    }

    async fn set_feature_flag(
        &self,
        request: Request<pb::SetFeatureFlagRequest>,
    ) -> Result<Response<pb::FeatureFlag>, Status> {
        self.0.reply(self.set_flag(request).await)
    }

    async fn get_entitlements(
        &self,
        request: Request<pb::GetEntitlementsRequest>,
    ) -> Result<Response<pb::Entitlements>, Status> {
        self.0.reply(self.entitlements(request).await)
    }
}
