//! Disputes: opened by a party on a FULFILLED order within the window (the order is frozen),
//! settled only with `marketplace.dispute.resolve`, escalated by a job when left alone.

use keel_kernel::grpc::paging::{TimeId, split_page};
use keel_kernel::grpc::{PageSize, PageToken};
use keel_kernel::jobs::{self, NewJob};
use keel_kernel::{Caller, Error, Violations, db};
use keel_proto::marketplace::v1 as pb;

use super::convert::dispute_state_filter;
use super::marketplace::Marketplace;
use super::user_in_tenant;
use crate::domain::dispute::{self, parse_text};
use crate::domain::{
    Dispute, DisputeAction, DisputeId, OrderAction, OrderId, Resolution, permissions,
};
use crate::events::{self, Cause};
use crate::jobs::{DISPUTE_ESCALATION, DisputeEscalation};
use crate::repo;
use crate::repo::disputes::Settlement;
use crate::repo::orders::Change;

impl Marketplace {
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn create_dispute_case(
        &self,
        caller: &Caller,
        request: pb::CreateDisputeRequest,
    ) -> Result<pb::Dispute, Error> {
        let (tenant, user) =
            user_in_tenant(caller, &request.tenant_id, permissions::DISPUTE_CREATE)?;
        let input = request
            .dispute
            .ok_or_else(|| Error::invalid("dispute", "is required"))?;
        let mut fields = Violations::default();
        let order_id = fields.check(OrderId::parse_field("dispute.order_id", &input.order_id));
        let reason = fields.check(parse_text("dispute.reason", &input.reason));
        fields.finish()?;
        let (Some(order_id), Some(reason)) = (order_id, reason) else {
            return Err(Error::invalid("dispute", "is invalid"));
        };

        let ctx = &self.0;
        let now = ctx.clock.now();
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let order = repo::orders::lock(&mut tx, order_id)
            .await?
            .filter(|o| o.is_party(user))
            .ok_or_else(|| Error::not_found("order", order_id))?;
        let next = order.state.apply(OrderAction::OpenDispute)?;
        dispute::check_window(order.fulfilled_at, now, ctx.settings.dispute_window())?;
        let opened =
            repo::disputes::insert(&mut tx, DisputeId::new(), &order, user, &reason, now).await?;
        repo::orders::set_state(&mut tx, order.id, next, Change::default(), now).await?;
        let job = NewJob::new(
            DISPUTE_ESCALATION,
            opened.id.to_string(),
            now + ctx.settings.dispute_escalation(),
        )
        .tenant(tenant)
        .payload(&DisputeEscalation {
            dispute_id: opened.id,
        })?;
        jobs::schedule(&mut tx, job).await?;
        ctx.outbox
            .enqueue(
                &mut tx,
                events::dispute_opened(&opened, &Cause::of(caller))?,
            )
            .await?;
        tx.commit().await?;
        Ok((&opened).into())
    }

    pub(super) async fn get_dispute_case(
        &self,
        caller: &Caller,
        request: pb::GetDisputeRequest,
    ) -> Result<pb::Dispute, Error> {
        let (tenant, viewer) =
            user_in_tenant(caller, &request.tenant_id, permissions::DISPUTE_READ)?;
        let id = DisputeId::parse_field("dispute_id", &request.dispute_id)?;
        let resolver = caller.claims.has_permission(permissions::DISPUTE_RESOLVE);
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let found = repo::disputes::get(&mut tx, id)
            .await?
            .filter(|d| resolver || d.is_party(viewer))
            .ok_or_else(|| Error::not_found("dispute", id))?;
        Ok((&found).into())
    }

    pub(super) async fn list_disputes_case(
        &self,
        caller: &Caller,
        request: pb::ListDisputesRequest,
    ) -> Result<pb::ListDisputesResponse, Error> {
        let (tenant, viewer) =
            user_in_tenant(caller, &request.tenant_id, permissions::DISPUTE_READ)?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<TimeId>(&request.page_token)?;
        let state = dispute_state_filter(request.state)?;
        let party = (!caller.claims.has_permission(permissions::DISPUTE_RESOLVE)).then_some(viewer);
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let rows = repo::disputes::list(&mut tx, party, state, after, size.fetch_limit()).await?;
        let (disputes, next_page_token) = split_page(rows, size, |d: &Dispute| TimeId {
            at: d.created_at,
            id: d.id.as_uuid(),
        });
        Ok(pb::ListDisputesResponse {
            disputes: disputes.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id, dispute_id = %request.dispute_id))]
    pub(super) async fn resolve_dispute_case(
        &self,
        caller: &Caller,
        request: pb::ResolveDisputeRequest,
    ) -> Result<pb::Dispute, Error> {
        let (tenant, _resolver) =
            user_in_tenant(caller, &request.tenant_id, permissions::DISPUTE_RESOLVE)?;
        let id = DisputeId::parse_field("dispute_id", &request.dispute_id)?;
        let mut fields = Violations::default();
        let resolution = fields.check(Resolution::parse("resolution", request.resolution));
        let note = fields.check(parse_text("note", &request.note));
        if request.refund_amount < 0 {
            fields.add("refund_amount", "must not be negative");
        }
        fields.finish()?;
        let (Some(resolution), Some(note)) = (resolution, note) else {
            return Err(Error::invalid("resolution", "is invalid"));
        };

        let ctx = &self.0;
        let now = ctx.clock.now();
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let open = repo::disputes::lock(&mut tx, id)
            .await?
            .ok_or_else(|| Error::not_found("dispute", id))?;
        open.state.apply(DisputeAction::Resolve)?;
        let order = repo::orders::lock(&mut tx, open.order_id)
            .await?
            .ok_or_else(|| Error::not_found("order", open.order_id))?;
        let refund =
            resolution.refund("refund_amount", request.refund_amount, order.total_amount)?;
        let order_next = order.state.apply(resolution.order_action())?;
        let cause = Cause::of(caller);
        let order = repo::orders::set_state(
            &mut tx,
            order.id,
            order_next,
            Change {
                refunded_amount: Some(refund),
                ..Change::default()
            },
            now,
        )
        .await?;
        let order_event = if order_next.releases_stock() {
            repo::listings::release(&mut tx, order.listing_id, order.quantity, now).await?;
            events::order_refunded(&order, &cause)?
        } else {
            events::order_completed(&order, now, &cause)?
        };
        let resolved_by = cause.actor.id.clone();
        let settled = repo::disputes::resolve(
            &mut tx,
            id,
            &Settlement {
                resolution,
                note: &note,
                resolved_by: &resolved_by,
                refund_amount: refund,
            },
            now,
        )
        .await?;
        ctx.outbox.enqueue(&mut tx, order_event).await?;
        ctx.outbox
            .enqueue(&mut tx, events::dispute_resolved(&settled, &cause)?)
            .await?;
        tx.commit().await?;
        Ok((&settled).into())
    }
}
