//! The inbox: list, unread count, mark read.

use keel_kernel::grpc::paging::split_page;
use keel_kernel::grpc::{PageSize, PageToken};
use keel_kernel::{Caller, Error, TenantId, UserId, db};
use keel_proto::notifications::v1 as pb;

use super::Notifications;
use super::convert::Before;
use crate::domain::{NotificationId, permissions};
use crate::repo;

/// The caller's tenant (the request's, which the token must be scoped to) and user.
pub(super) fn own_inbox(
    caller: &Caller,
    tenant_id: &str,
    permission: &str,
) -> Result<(TenantId, UserId), Error> {
    let tenant = TenantId::parse_field("tenant_id", tenant_id)?;
    let tenant = caller.tenant_with(tenant, permission)?;
    Ok((tenant, caller.user()?))
}

impl Notifications {
    pub(super) async fn list(
        &self,
        caller: &Caller,
        request: pb::ListNotificationsRequest,
    ) -> Result<pb::ListNotificationsResponse, Error> {
        let (tenant, user) = own_inbox(caller, &request.tenant_id, permissions::INBOX_READ)?;
        let size = PageSize::parse(request.page_size)?;
        let before = PageToken::decode::<Before>(&request.page_token)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let rows = repo::notifications::list(
            &mut tx,
            user,
            request.unread_only,
            before.map(|b| b.0),
            size.fetch_limit(),
        )
        .await?;
        let unread_count = repo::notifications::unread_count(&mut tx, user).await?;
        tx.commit().await?;
        let (rows, next_page_token) = split_page(rows, size, |n| Before(n.sequence));
        Ok(pb::ListNotificationsResponse {
            notifications: rows.iter().map(pb::Notification::from).collect(),
            next_page_token,
            unread_count,
        })
    }

    pub(super) async fn unread(
        &self,
        caller: &Caller,
        request: pb::GetUnreadCountRequest,
    ) -> Result<pb::GetUnreadCountResponse, Error> {
        let (tenant, user) = own_inbox(caller, &request.tenant_id, permissions::INBOX_READ)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let unread_count = repo::notifications::unread_count(&mut tx, user).await?;
        tx.commit().await?;
        Ok(pb::GetUnreadCountResponse { unread_count })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn mark_read_case(
        &self,
        caller: &Caller,
        request: pb::MarkReadRequest,
    ) -> Result<pb::Notification, Error> {
        let (tenant, user) = own_inbox(caller, &request.tenant_id, permissions::INBOX_UPDATE)?;
        let id = NotificationId::parse_field("notification_id", &request.notification_id)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let notification =
            repo::notifications::mark_read(&mut tx, user, id, self.0.clock.now()).await?;
        tx.commit().await?;
        Ok(pb::Notification::from(&notification))
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn mark_all_read_case(
        &self,
        caller: &Caller,
        request: pb::MarkAllReadRequest,
    ) -> Result<pb::MarkAllReadResponse, Error> {
        let (tenant, user) = own_inbox(caller, &request.tenant_id, permissions::INBOX_UPDATE)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let marked = repo::notifications::mark_all_read(&mut tx, user, self.0.clock.now()).await?;
        tx.commit().await?;
        Ok(pb::MarkAllReadResponse { marked })
    }
}
