//! A tenant's audit log.

use keel_kernel::grpc::from_timestamp;
use keel_kernel::grpc::paging::{self, AfterId, PageSize, PageToken};
use keel_kernel::{Caller, Error, Violations, db};
use keel_proto::identity::v1 as pb;

use super::access::Access;
use super::convert;
use crate::domain::{AuditEventId, permissions};
use crate::repo::audit::{self, AuditFilter};

impl Access {
    pub(super) async fn list_audit_events(
        &self,
        caller: &Caller,
        request: pb::ListAuditEventsRequest,
    ) -> Result<pb::ListAuditEventsResponse, Error> {
        let tenant = caller.tenant_field("tenant_id", &request.tenant_id)?;
        caller.require(permissions::AUDIT_EVENT_LIST)?;
        let mut fields = Violations::default();
        let size = fields.check(PageSize::parse(request.page_size));
        let start = request
            .start_time
            .as_ref()
            .and_then(|ts| fields.check(from_timestamp("start_time", ts)));
        let end = request
            .end_time
            .as_ref()
            .and_then(|ts| fields.check(from_timestamp("end_time", ts)));
        let before = fields
            .check(PageToken::decode::<AfterId>(&request.page_token))
            .flatten();
        fields.finish()?;
        let Some(size) = size else {
            return Err(Error::internal(anyhow::anyhow!(
                "page size parsed without violations yet missing"
            )));
        };
        let filter = AuditFilter {
            actor_id: Some(request.actor_id).filter(|s| !s.is_empty()),
            action: Some(request.action).filter(|s| !s.is_empty()),
            start,
            end,
            before: before.map(|cursor| AuditEventId::from_uuid(cursor.0)),
        };
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let rows = audit::list_tenant(&mut tx, &filter, size.fetch_limit()).await?;
        tx.commit().await?;
        let (page, next_page_token) =
            paging::split_page(rows, size, |event| AfterId(event.id.as_uuid()));
        Ok(pb::ListAuditEventsResponse {
            audit_events: page.iter().map(convert::audit_event).collect(),
            next_page_token,
        })
    }
}
