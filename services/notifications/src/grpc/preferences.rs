//! Preferences: the caller's own per category, and the tenant's defaults.

use keel_kernel::{Caller, Error, TenantId, db};
use keel_proto::notifications::v1 as pb;

use super::Notifications;
use super::inbox::own_inbox;
use crate::domain::{Category, Channels, permissions};
use crate::repo;

fn render(tenant: TenantId, preferences: Vec<(Category, Channels)>) -> pb::Preferences {
    pb::Preferences {
        tenant_id: tenant.to_string(),
        preferences: preferences
            .into_iter()
            .map(|(category, channels)| channels.to_proto(category))
            .collect(),
    }
}

fn parse(preference: Option<&pb::Preference>) -> Result<(Category, Channels), Error> {
    let preference = preference.ok_or_else(|| Error::invalid("preference", "is required"))?;
    Channels::parse("preference", preference)
}

impl Notifications {
    pub(super) async fn preferences(
        &self,
        caller: &Caller,
        request: pb::GetPreferencesRequest,
    ) -> Result<pb::Preferences, Error> {
        let (tenant, user) = own_inbox(caller, &request.tenant_id, permissions::PREFERENCE_READ)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let preferences = repo::preferences::effective(&mut tx, Some(user)).await?;
        tx.commit().await?;
        Ok(render(tenant, preferences))
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn update_preference_case(
        &self,
        caller: &Caller,
        request: pb::UpdatePreferenceRequest,
    ) -> Result<pb::Preferences, Error> {
        let (category, channels) = parse(request.preference.as_ref())?;
        let (tenant, user) = own_inbox(caller, &request.tenant_id, permissions::PREFERENCE_UPDATE)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        repo::preferences::set_for_user(&mut tx, user, category, channels, self.0.clock.now())
            .await?;
        let preferences = repo::preferences::effective(&mut tx, Some(user)).await?;
        tx.commit().await?;
        Ok(render(tenant, preferences))
    }

    pub(super) async fn tenant_defaults(
        &self,
        caller: &Caller,
        request: pb::GetTenantDefaultsRequest,
    ) -> Result<pb::Preferences, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::PREFERENCE_READ)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let preferences = repo::preferences::effective(&mut tx, None).await?;
        tx.commit().await?;
        Ok(render(tenant, preferences))
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn update_tenant_default_case(
        &self,
        caller: &Caller,
        request: pb::UpdateTenantDefaultRequest,
    ) -> Result<pb::Preferences, Error> {
        let (category, channels) = parse(request.preference.as_ref())?;
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::DEFAULT_MANAGE)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        repo::preferences::set_for_tenant(&mut tx, category, channels, self.0.clock.now()).await?;
        let preferences = repo::preferences::effective(&mut tx, None).await?;
        tx.commit().await?;
        Ok(render(tenant, preferences))
    }
}
