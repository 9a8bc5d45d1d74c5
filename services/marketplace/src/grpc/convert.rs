//! Proto -> domain (all field violations at once) and domain -> proto.

use keel_kernel::grpc::timestamp;
use keel_kernel::{Error, Violations};
use keel_proto::marketplace::v1 as pb;

use crate::domain::listing::{self, ListingChanges, NewListing};
use crate::domain::money::{self, Currency};
use crate::domain::{Dispute, DisputeState, Listing, ListingState, Offer, Order, OrderState};

fn optional_id(id: Option<impl ToString>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

impl TryFrom<Option<pb::Listing>> for NewListing {
    type Error = Error;

    fn try_from(listing: Option<pb::Listing>) -> Result<NewListing, Error> {
        let listing = listing.ok_or_else(|| Error::invalid("listing", "is required"))?;
        let mut fields = Violations::default();
        let title = fields.check(listing::parse_title("listing.title", &listing.title));
        let description = fields.check(listing::parse_description(
            "listing.description",
            &listing.description,
        ));
        let unit_price = fields.check(money::parse_price("listing.unit_price", listing.unit_price));
        let currency = fields.check(Currency::parse("listing.currency", &listing.currency));
        let quantity = fields.check(listing::parse_quantity_available(
            "listing.quantity_available",
            listing.quantity_available,
        ));
        fields.finish()?;
        match (title, description, unit_price, currency, quantity) {
            (Some(title), Some(description), Some(unit_price), Some(currency), Some(quantity)) => {
                Ok(NewListing {
                    title,
                    description,
                    unit_price,
                    currency: currency.code().to_owned(),
                    quantity_available: quantity,
                })
            }
            _ => Err(Error::invalid("listing", "is invalid")),
        }
    }
}

/// The changes an UpdateListing asks for: the mask's fields, each validated.
pub fn listing_changes(
    listing: Option<pb::Listing>,
    mask: Option<prost_types::FieldMask>,
) -> Result<ListingChanges, Error> {
    let listing = listing.ok_or_else(|| Error::invalid("listing", "is required"))?;
    let paths = mask.map(|mask| mask.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(Error::invalid("update_mask", "names no field to update"));
    }
    let mut fields = Violations::default();
    let mut changes = ListingChanges::default();
    for path in &paths {
        match path.as_str() {
            "title" => {
                changes.title = fields.check(listing::parse_title("listing.title", &listing.title))
            }
            "description" => {
                changes.description = fields.check(listing::parse_description(
                    "listing.description",
                    &listing.description,
                ))
            }
            "unit_price" => {
                changes.unit_price =
                    fields.check(money::parse_price("listing.unit_price", listing.unit_price))
            }
            "quantity_available" => {
                changes.quantity_available = fields.check(listing::parse_quantity_available(
                    "listing.quantity_available",
                    listing.quantity_available,
                ))
            }
            "currency" => {
                changes.currency = fields
                    .check(Currency::parse("listing.currency", &listing.currency))
                    .map(|c| c.code().to_owned())
            }
            other => fields.add(
                "update_mask",
                format!("`{other}` cannot be updated (title, description, unit_price, quantity_available, currency)"),
            ),
        }
    }
    fields.finish()?;
    Ok(changes)
}

/// A list filter on a wire enum: None for UNSPECIFIED, VALIDATION naming `field` for unknown.
pub fn state_filter<W, D>(
    field: &str,
    value: i32,
    from_proto: impl Fn(W) -> Option<D>,
) -> Result<Option<D>, Error>
where
    W: TryFrom<i32>,
{
    if value == 0 {
        return Ok(None);
    }
    let wire = W::try_from(value).map_err(|_| Error::invalid(field, "is not a known state"))?;
    from_proto(wire)
        .map(Some)
        .ok_or_else(|| Error::invalid(field, "is not a known state"))
}

pub fn listing_state_filter(value: i32) -> Result<Option<ListingState>, Error> {
    state_filter("state", value, ListingState::from_proto)
}

pub fn order_state_filter(value: i32) -> Result<Option<OrderState>, Error> {
    state_filter("state", value, OrderState::from_proto)
}

pub fn dispute_state_filter(value: i32) -> Result<Option<DisputeState>, Error> {
    state_filter("state", value, DisputeState::from_proto)
}

impl From<&Listing> for pb::Listing {
    fn from(listing: &Listing) -> pb::Listing {
        pb::Listing {
            id: listing.id.to_string(),
            tenant_id: listing.tenant_id.to_string(),
            seller_id: listing.seller_id.to_string(),
            title: listing.title.clone(),
            description: listing.description.clone(),
            unit_price: listing.unit_price,
            currency: listing.currency.clone(),
            quantity_available: listing.quantity_available,
            state: pb::ListingState::from(listing.state) as i32,
            create_time: Some(timestamp(listing.created_at)),
            update_time: Some(timestamp(listing.updated_at)),
        }
    }
}

impl From<&Offer> for pb::Offer {
    fn from(offer: &Offer) -> pb::Offer {
        pb::Offer {
            id: offer.id.to_string(),
            tenant_id: offer.tenant_id.to_string(),
            listing_id: offer.listing_id.to_string(),
            buyer_id: offer.buyer_id.to_string(),
            unit_price: offer.unit_price,
            quantity: offer.quantity,
            state: pb::OfferState::from(offer.state) as i32,
            expire_time: Some(timestamp(offer.expires_at)),
            order_id: optional_id(offer.order_id),
            create_time: Some(timestamp(offer.created_at)),
            counter_offer_id: optional_id(offer.counter_offer_id),
            countered_offer_id: optional_id(offer.countered_offer_id),
            proposed_by: pb::OfferParty::from(offer.proposed_by) as i32,
            seller_id: offer.seller_id.to_string(),
        }
    }
}

impl From<&Order> for pb::Order {
    fn from(order: &Order) -> pb::Order {
        pb::Order {
            id: order.id.to_string(),
            tenant_id: order.tenant_id.to_string(),
            listing_id: order.listing_id.to_string(),
            offer_id: optional_id(order.offer_id),
            buyer_id: order.buyer_id.to_string(),
            seller_id: order.seller_id.to_string(),
            quantity: order.quantity,
            unit_price: order.unit_price,
            total_amount: order.total_amount,
            currency: order.currency.clone(),
            state: pb::OrderState::from(order.state) as i32,
            create_time: Some(timestamp(order.created_at)),
            update_time: Some(timestamp(order.updated_at)),
            commission_amount: order.commission_amount,
            refunded_amount: order.refunded_amount,
            fulfill_time: order.fulfilled_at.map(timestamp),
            cancel_reason: order.cancel_reason.clone(),
        }
    }
}

impl From<&Dispute> for pb::Dispute {
    fn from(dispute: &Dispute) -> pb::Dispute {
        pb::Dispute {
            id: dispute.id.to_string(),
            tenant_id: dispute.tenant_id.to_string(),
            order_id: dispute.order_id.to_string(),
            opened_by: dispute.opened_by.to_string(),
            reason: dispute.reason.clone(),
            state: pb::DisputeState::from(dispute.state) as i32,
            resolution: dispute
                .resolution
                .map(|r| pb::DisputeResolution::from(r) as i32)
                .unwrap_or_default(),
            resolution_note: dispute.resolution_note.clone(),
            resolved_by: dispute.resolved_by.clone(),
            create_time: Some(timestamp(dispute.created_at)),
            resolve_time: dispute.resolved_at.map(timestamp),
            refund_amount: dispute.refund_amount,
            escalate_time: dispute.escalated_at.map(timestamp),
        }
    }
}
