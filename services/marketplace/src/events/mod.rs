//! The events marketplace publishes, built from domain values and written to the outbox in the
//! transaction of the change they report. Subjects are `events.<event type>`.
//!
//! Aggregates and versions (consumers drop an event whose version is not above the last seen):
//! - `marketplace.listing.*`: aggregate id = listing id, version = the listing's version;
//! - `marketplace.offer.*`: aggregate id = offer id, version = the offer's version;
//! - `marketplace.order.*`: aggregate id = order id, version = the order's version;
//! - `marketplace.dispute.*`: aggregate id = dispute id, version = the dispute's version.
//!
//! Billing meters `marketplace.order.completed` (`OrderCompleted`, whose shape billing relies
//! on). Marketplace consumes billing's entitlements (`billing.rs`): the tenant's plan picks the
//! commission rule.

use chrono::{DateTime, Utc};
use keel_kernel::grpc::timestamp;
use keel_kernel::outbox::NewEvent;
use keel_kernel::{Actor, Error, TenantId};
use keel_proto::marketplace::v1 as pb;

use crate::domain::{Dispute, Listing, Offer, Order};

pub mod billing;

pub const LISTING_PUBLISHED: &str = "marketplace.listing.published";
pub const LISTING_ARCHIVED: &str = "marketplace.listing.archived";
pub const OFFER_CREATED: &str = "marketplace.offer.created";
pub const OFFER_ACCEPTED: &str = "marketplace.offer.accepted";
pub const OFFER_REJECTED: &str = "marketplace.offer.rejected";
pub const OFFER_EXPIRED: &str = "marketplace.offer.expired";
pub const OFFER_COUNTERED: &str = "marketplace.offer.countered";
pub const ORDER_PLACED: &str = "marketplace.order.placed";
pub const ORDER_CANCELED: &str = "marketplace.order.canceled";
pub const ORDER_FULFILLED: &str = "marketplace.order.fulfilled";
pub const ORDER_COMPLETED: &str = "marketplace.order.completed";
pub const ORDER_REFUNDED: &str = "marketplace.order.refunded";
pub const DISPUTE_OPENED: &str = "marketplace.dispute.opened";
pub const DISPUTE_RESOLVED: &str = "marketplace.dispute.resolved";
pub const DISPUTE_ESCALATED: &str = "marketplace.dispute.escalated";

/// Who caused an event and the request it belongs to: a request's caller, or a job.
#[derive(Debug, Clone)]
pub struct Cause {
    pub actor: Actor,
    pub correlation: String,
}

impl Cause {
    pub fn of(caller: &keel_kernel::Caller) -> Cause {
        Cause {
            actor: caller.actor(),
            correlation: caller.request_id().to_owned(),
        }
    }

    /// A job's work: the system actor, correlated by the job's key.
    pub fn system(what: &str, key: &str) -> Cause {
        Cause {
            actor: Actor::system(what),
            correlation: key.to_owned(),
        }
    }
}

fn event<M: prost::Name>(
    event_type: &str,
    aggregate: impl std::fmt::Display,
    tenant: TenantId,
    version: i64,
    payload: &M,
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let event = NewEvent::new(event_type, aggregate, payload)?
        .tenant(tenant)
        .version(version)
        .actor(&cause.actor);
    Ok(match cause.correlation.as_str() {
        "" => event,
        id => event.correlation(id, id),
    })
}

pub fn listing_published(listing: &Listing, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::ListingPublished {
        listing_id: listing.id.to_string(),
        tenant_id: listing.tenant_id.to_string(),
        seller_id: listing.seller_id.to_string(),
        title: listing.title.clone(),
        unit_price: listing.unit_price,
        currency: listing.currency.clone(),
        quantity_available: listing.quantity_available,
    };
    event(
        LISTING_PUBLISHED,
        listing.id,
        listing.tenant_id,
        listing.version,
        &payload,
        cause,
    )
}

pub fn listing_archived(listing: &Listing, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::ListingArchived {
        listing_id: listing.id.to_string(),
        tenant_id: listing.tenant_id.to_string(),
        seller_id: listing.seller_id.to_string(),
    };
    event(
        LISTING_ARCHIVED,
        listing.id,
        listing.tenant_id,
        listing.version,
        &payload,
        cause,
    )
}

pub fn offer_created(offer: &Offer, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::OfferCreated {
        offer_id: offer.id.to_string(),
        tenant_id: offer.tenant_id.to_string(),
        listing_id: offer.listing_id.to_string(),
        buyer_id: offer.buyer_id.to_string(),
        seller_id: offer.seller_id.to_string(),
        unit_price: offer.unit_price,
        quantity: offer.quantity,
        currency: offer.currency.clone(),
        expire_time: Some(timestamp(offer.expires_at)),
        proposed_by: offer.proposed_by.as_str().into(),
        countered_offer_id: offer
            .countered_offer_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    };
    event(
        OFFER_CREATED,
        offer.id,
        offer.tenant_id,
        offer.version,
        &payload,
        cause,
    )
}

pub fn offer_accepted(offer: &Offer, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::OfferAccepted {
        offer_id: offer.id.to_string(),
        tenant_id: offer.tenant_id.to_string(),
        listing_id: offer.listing_id.to_string(),
        order_id: offer.order_id.map(|id| id.to_string()).unwrap_or_default(),
    };
    event(
        OFFER_ACCEPTED,
        offer.id,
        offer.tenant_id,
        offer.version,
        &payload,
        cause,
    )
}

pub fn offer_rejected(offer: &Offer, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::OfferRejected {
        offer_id: offer.id.to_string(),
        tenant_id: offer.tenant_id.to_string(),
        listing_id: offer.listing_id.to_string(),
    };
    event(
        OFFER_REJECTED,
        offer.id,
        offer.tenant_id,
        offer.version,
        &payload,
        cause,
    )
}

pub fn offer_expired(offer: &Offer, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::OfferExpired {
        offer_id: offer.id.to_string(),
        tenant_id: offer.tenant_id.to_string(),
        listing_id: offer.listing_id.to_string(),
    };
    event(
        OFFER_EXPIRED,
        offer.id,
        offer.tenant_id,
        offer.version,
        &payload,
        cause,
    )
}

pub fn offer_countered(
    original: &Offer,
    counter: &Offer,
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let payload = pb::OfferCountered {
        offer_id: original.id.to_string(),
        tenant_id: original.tenant_id.to_string(),
        listing_id: original.listing_id.to_string(),
        counter_offer_id: counter.id.to_string(),
        unit_price: counter.unit_price,
        quantity: counter.quantity,
    };
    event(
        OFFER_COUNTERED,
        original.id,
        original.tenant_id,
        original.version,
        &payload,
        cause,
    )
}

pub fn order_placed(order: &Order, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::OrderPlaced {
        order_id: order.id.to_string(),
        tenant_id: order.tenant_id.to_string(),
        listing_id: order.listing_id.to_string(),
        offer_id: order.offer_id.map(|id| id.to_string()).unwrap_or_default(),
        buyer_id: order.buyer_id.to_string(),
        seller_id: order.seller_id.to_string(),
        quantity: order.quantity,
        unit_price: order.unit_price,
        total_amount: order.total_amount,
        currency: order.currency.clone(),
        commission_amount: order.commission_amount,
    };
    event(
        ORDER_PLACED,
        order.id,
        order.tenant_id,
        order.version,
        &payload,
        cause,
    )
}

pub fn order_canceled(order: &Order, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::OrderCanceled {
        order_id: order.id.to_string(),
        tenant_id: order.tenant_id.to_string(),
        canceled_by: cause.actor.id.clone(),
        reason: order.cancel_reason.clone(),
    };
    event(
        ORDER_CANCELED,
        order.id,
        order.tenant_id,
        order.version,
        &payload,
        cause,
    )
}

pub fn order_fulfilled(order: &Order, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::OrderFulfilled {
        order_id: order.id.to_string(),
        tenant_id: order.tenant_id.to_string(),
        fulfill_time: order.fulfilled_at.map(timestamp),
    };
    event(
        ORDER_FULFILLED,
        order.id,
        order.tenant_id,
        order.version,
        &payload,
        cause,
    )
}

/// Billing meters this one (`marketplace.orders`): published once per order, when it is final.
pub fn order_completed(order: &Order, at: DateTime<Utc>, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::OrderCompleted {
        order_id: order.id.to_string(),
        tenant_id: order.tenant_id.to_string(),
        buyer_id: order.buyer_id.to_string(),
        seller_id: order.seller_id.to_string(),
        total_amount: order.total_amount,
        currency: order.currency.clone(),
        complete_time: Some(timestamp(at)),
    };
    event(
        ORDER_COMPLETED,
        order.id,
        order.tenant_id,
        order.version,
        &payload,
        cause,
    )
}

pub fn order_refunded(order: &Order, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::OrderRefunded {
        order_id: order.id.to_string(),
        tenant_id: order.tenant_id.to_string(),
        refund_amount: order.refunded_amount,
        currency: order.currency.clone(),
    };
    event(
        ORDER_REFUNDED,
        order.id,
        order.tenant_id,
        order.version,
        &payload,
        cause,
    )
}

pub fn dispute_opened(dispute: &Dispute, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::DisputeOpened {
        dispute_id: dispute.id.to_string(),
        tenant_id: dispute.tenant_id.to_string(),
        order_id: dispute.order_id.to_string(),
        opened_by: dispute.opened_by.to_string(),
        reason: dispute.reason.clone(),
    };
    event(
        DISPUTE_OPENED,
        dispute.id,
        dispute.tenant_id,
        dispute.version,
        &payload,
        cause,
    )
}

pub fn dispute_resolved(dispute: &Dispute, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::DisputeResolved {
        dispute_id: dispute.id.to_string(),
        tenant_id: dispute.tenant_id.to_string(),
        order_id: dispute.order_id.to_string(),
        resolution: dispute
            .resolution
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        refund_amount: dispute.refund_amount,
        resolved_by: dispute.resolved_by.clone(),
    };
    event(
        DISPUTE_RESOLVED,
        dispute.id,
        dispute.tenant_id,
        dispute.version,
        &payload,
        cause,
    )
}

pub fn dispute_escalated(dispute: &Dispute, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::DisputeEscalated {
        dispute_id: dispute.id.to_string(),
        tenant_id: dispute.tenant_id.to_string(),
        order_id: dispute.order_id.to_string(),
        open_time: Some(timestamp(dispute.created_at)),
    };
    event(
        DISPUTE_ESCALATED,
        dispute.id,
        dispute.tenant_id,
        dispute.version,
        &payload,
        cause,
    )
}
