//! Orders: placed at the listing's price (idempotent, never beyond the stock), canceled,
//! fulfilled by the seller, completed by the buyer.

use chrono::{DateTime, Utc};
use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::{TimeId, split_page};
use keel_kernel::grpc::{PageSize, PageToken};
use keel_kernel::idempotency::{Claim, IdempotencyKey, Scope};
use keel_kernel::{Caller, Error, ErrorCode, UserId, db};
use keel_proto::marketplace::v1 as pb;

use super::Context;
use super::convert::order_state_filter;
use super::marketplace::Marketplace;
use super::user_in_tenant;
use crate::domain::order::{self, NewOrder};
use crate::domain::{ListingId, OfferId, Order, OrderAction, OrderId, money, permissions};
use crate::events::{self, Cause};
use crate::repo;
use crate::repo::orders::Change;

/// What an order is placed for.
pub(super) struct Purchase {
    pub listing: ListingId,
    pub buyer: UserId,
    pub quantity: i64,
    /// The accepted offer's price; the listing's own price when None.
    pub offer: Option<(OfferId, i64)>,
}

/// Reserve the units and insert the order, in the caller's transaction (so the reservation,
/// the order and its event commit together or not at all).
pub(super) async fn place(
    ctx: &Context,
    tx: &mut TenantTx,
    purchase: &Purchase,
    now: DateTime<Utc>,
    cause: &Cause,
) -> Result<Order, Error> {
    let listing = repo::listings::get(tx, purchase.listing)
        .await?
        .filter(|l| l.visible_to(purchase.buyer))
        .ok_or_else(|| Error::not_found("listing", purchase.listing))?;
    if listing.seller_id == purchase.buyer {
        return Err(Error::failed_precondition(
            "sellers cannot buy from their own listing",
        ));
    }
    listing.state.require_published()?;
    // One conditional UPDATE: no lock is read-then-written, so concurrent orders cannot both see
    // the last unit.
    let Some(reserved) =
        repo::listings::reserve(tx, purchase.listing, purchase.quantity, now).await?
    else {
        let current = repo::listings::get(tx, purchase.listing)
            .await?
            .ok_or_else(|| Error::not_found("listing", purchase.listing))?;
        current.state.require_published()?;
        return Err(Error::failed_precondition(format!(
            "not enough quantity left: {} requested, {} available",
            purchase.quantity, current.quantity_available
        )));
    };
    let (offer_id, unit_price) = match purchase.offer {
        Some((offer, price)) => (Some(offer), price),
        None => (None, reserved.unit_price),
    };
    let total = money::total(unit_price, purchase.quantity, "order.quantity")?;
    let plan = repo::plans::get(tx).await?;
    let commission = ctx
        .settings
        .commission(plan.as_deref(), &reserved.currency)
        .on(total)
        .ok_or_else(|| Error::invalid("order.quantity", "the commission overflows"))?;
    let order = repo::orders::insert(
        tx,
        &NewOrder {
            id: OrderId::new(),
            listing_id: reserved.id,
            offer_id,
            buyer_id: purchase.buyer,
            seller_id: reserved.seller_id,
            quantity: purchase.quantity,
            unit_price,
            total_amount: total,
            currency: reserved.currency.clone(),
            commission_amount: commission,
            at: now,
        },
    )
    .await?;
    ctx.outbox
        .enqueue(tx, events::order_placed(&order, cause)?)
        .await?;
    Ok(order)
}

/// The order if `viewer` may see it (a party, or with `order.read_all`); NOT_FOUND otherwise.
fn visible(
    order: Option<Order>,
    id: OrderId,
    viewer: UserId,
    read_all: bool,
) -> Result<Order, Error> {
    order
        .filter(|o| read_all || o.is_party(viewer))
        .ok_or_else(|| Error::not_found("order", id))
}

/// The kernel refuses a key reused with another body as VALIDATION; the contract says CONFLICT
/// naming the key. Only a claim's VALIDATION means that (the key's format was checked before).
fn reused_key(err: Error, request: &pb::CreateOrderRequest, caller: &Caller) -> Error {
    if err.code() != ErrorCode::Validation {
        return err;
    }
    let (field, key) = if request.request_id.is_empty() {
        (
            "Idempotency-Key",
            caller.meta.idempotency_key.clone().unwrap_or_default(),
        )
    } else {
        ("request_id", request.request_id.clone())
    };
    Error::conflict(format!(
        "the idempotency key `{key}` ({field}) was already used with a different request"
    ))
}

impl Marketplace {
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn create_order_case(
        &self,
        caller: &Caller,
        request: pb::CreateOrderRequest,
    ) -> Result<pb::Order, Error> {
        let (tenant, buyer) =
            user_in_tenant(caller, &request.tenant_id, permissions::ORDER_CREATE)?;
        // Keys are per tenant and buyer: one buyer's key never replays another's order.
        let retry_key = IdempotencyKey::from_request(
            order::CREATE_ORDER_METHOD,
            Scope::Principal(format!("{tenant}:{buyer}")),
            &request.request_id,
            &caller.meta,
            &request,
        )?;
        let order = request
            .order
            .as_ref()
            .ok_or_else(|| Error::invalid("order", "is required"))?;
        let mut fields = keel_kernel::Violations::default();
        let listing = fields.check(ListingId::parse_field(
            "order.listing_id",
            &order.listing_id,
        ));
        let quantity = fields.check(order::parse_quantity("order.quantity", order.quantity));
        fields.finish()?;
        let (Some(listing), Some(quantity)) = (listing, quantity) else {
            return Err(Error::invalid("order", "is invalid"));
        };

        let ctx = &self.0;
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        if let Some(retry_key) = &retry_key {
            match retry_key.claim::<pb::Order>(&mut tx).await {
                Ok(Claim::Replay(first)) => return Ok(first),
                Ok(Claim::New) => {}
                Err(err) => return Err(reused_key(err, &request, caller)),
            }
        }
        let purchase = Purchase {
            listing,
            buyer,
            quantity,
            offer: None,
        };
        let placed = place(ctx, &mut tx, &purchase, ctx.clock.now(), &Cause::of(caller)).await?;
        let answer = pb::Order::from(&placed);
        if let Some(retry_key) = &retry_key {
            retry_key.complete(&mut tx, &answer).await?;
        }
        tx.commit().await?;
        Ok(answer)
    }

    pub(super) async fn get_order_case(
        &self,
        caller: &Caller,
        request: pb::GetOrderRequest,
    ) -> Result<pb::Order, Error> {
        let (tenant, viewer) = user_in_tenant(caller, &request.tenant_id, permissions::ORDER_READ)?;
        let id = OrderId::parse_field("order_id", &request.order_id)?;
        let read_all = caller.claims.has_permission(permissions::ORDER_READ_ALL);
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let order = visible(repo::orders::get(&mut tx, id).await?, id, viewer, read_all)?;
        Ok((&order).into())
    }

    pub(super) async fn list_orders_case(
        &self,
        caller: &Caller,
        request: pb::ListOrdersRequest,
    ) -> Result<pb::ListOrdersResponse, Error> {
        let (tenant, viewer) = user_in_tenant(caller, &request.tenant_id, permissions::ORDER_READ)?;
        let size = PageSize::parse(request.page_size)?;
        let before = PageToken::decode::<TimeId>(&request.page_token)?;
        let state = order_state_filter(request.state)?;
        let party = (!caller.claims.has_permission(permissions::ORDER_READ_ALL)).then_some(viewer);
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let rows = repo::orders::list(&mut tx, party, state, before, size.fetch_limit()).await?;
        let (orders, next_page_token) = split_page(rows, size, |o| TimeId {
            at: o.created_at,
            id: o.id.as_uuid(),
        });
        Ok(pb::ListOrdersResponse {
            orders: orders.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    /// Cancel, fulfil or complete an order: who may is checked here, whether the state allows
    /// it by the order table.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, order_id = %order_id, action = %action))]
    pub(super) async fn order_transition(
        &self,
        caller: &Caller,
        tenant: &str,
        order_id: &str,
        action: OrderAction,
        reason: &str,
    ) -> Result<pb::Order, Error> {
        let (tenant, user) = user_in_tenant(caller, tenant, permissions::ORDER_UPDATE)?;
        let id = OrderId::parse_field("order_id", order_id)?;
        let ctx = &self.0;
        let now = ctx.clock.now();
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let read_all = caller.claims.has_permission(permissions::ORDER_READ_ALL);
        let order = visible(repo::orders::lock(&mut tx, id).await?, id, user, read_all)?;
        let allowed = match action {
            OrderAction::Cancel => order.is_party(user),
            OrderAction::Fulfill => order.seller_id == user,
            OrderAction::Complete => order.buyer_id == user,
            _ => false,
        };
        if !allowed {
            return Err(Error::forbidden(format!(
                "{action} this order is not the caller's to do"
            )));
        }
        let next = order.state.apply(action)?;
        let cause = Cause::of(caller);
        let change = match action {
            OrderAction::Cancel => Change {
                cancel_reason: Some(reason.trim()),
                ..Change::default()
            },
            OrderAction::Fulfill => Change {
                fulfilled_at: Some(now),
                ..Change::default()
            },
            _ => Change::default(),
        };
        let order = repo::orders::set_state(&mut tx, id, next, change, now).await?;
        if next.releases_stock() {
            repo::listings::release(&mut tx, order.listing_id, order.quantity, now).await?;
        }
        let event = match action {
            OrderAction::Cancel => events::order_canceled(&order, &cause)?,
            OrderAction::Fulfill => events::order_fulfilled(&order, &cause)?,
            _ => events::order_completed(&order, now, &cause)?,
        };
        ctx.outbox.enqueue(&mut tx, event).await?;
        tx.commit().await?;
        Ok((&order).into())
    }
}
