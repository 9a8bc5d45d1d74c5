//! The `NotificationService` handler: every trait method builds the `Caller` and calls the use
//! case (in `inbox.rs`, `preferences.rs`, `watch.rs`).

use std::pin::Pin;

use futures::Stream;
use keel_kernel::Caller;
use keel_proto::notifications::v1 as pb;
use keel_proto::notifications::v1::notification_service_server::NotificationService;
use tonic::{Request, Response, Status};

use super::Shared;

pub struct Notifications(pub Shared);

pub type NotificationEvents =
    Pin<Box<dyn Stream<Item = Result<pb::NotificationEvent, Status>> + Send>>;

#[tonic::async_trait]
impl NotificationService for Notifications {
    type WatchNotificationsStream = NotificationEvents;

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list(&caller, request.into_inner()).await?,
        ))
    }

    async fn get_unread_count(
        &self,
        request: Request<pb::GetUnreadCountRequest>,
    ) -> Result<Response<pb::GetUnreadCountResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.unread(&caller, request.into_inner()).await?,
        ))
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::Notification>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.mark_read_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn mark_all_read(
        &self,
        request: Request<pb::MarkAllReadRequest>,
    ) -> Result<Response<pb::MarkAllReadResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.mark_all_read_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn watch_notifications(
        &self,
        request: Request<pb::WatchNotificationsRequest>,
    ) -> Result<Response<Self::WatchNotificationsStream>, Status> {
        let caller = Caller::from_request(&request)?;
        let last_event_id = request
            .metadata()
            .get(super::watch::LAST_EVENT_ID)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Response::new(
            self.watch(&caller, request.into_inner(), &last_event_id)
                .await?,
        ))
    }

    async fn get_preferences(
        &self,
        request: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::Preferences>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.preferences(&caller, request.into_inner()).await?,
        ))
    }

    async fn update_preference(
        &self,
        request: Request<pb::UpdatePreferenceRequest>,
    ) -> Result<Response<pb::Preferences>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.update_preference_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn get_tenant_defaults(
        &self,
        request: Request<pb::GetTenantDefaultsRequest>,
    ) -> Result<Response<pb::Preferences>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.tenant_defaults(&caller, request.into_inner()).await?,
        ))
    }

    async fn update_tenant_default(
        &self,
        request: Request<pb::UpdateTenantDefaultRequest>,
    ) -> Result<Response<pb::Preferences>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.update_tenant_default_case(&caller, request.into_inner())
                .await?,
        ))
    }
}
