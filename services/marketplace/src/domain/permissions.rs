//! The permissions marketplace checks, named once (tenant rights, on a token scoped to the
//! tenant). Identity's catalogue lists them; the built-in roles grant them by pattern.

pub const LISTING_READ: &str = "marketplace.listing.read";
pub const LISTING_CREATE: &str = "marketplace.listing.create";
pub const LISTING_UPDATE: &str = "marketplace.listing.update";
pub const OFFER_READ: &str = "marketplace.offer.read";
pub const OFFER_CREATE: &str = "marketplace.offer.create";
pub const ORDER_READ: &str = "marketplace.order.read";
pub const ORDER_CREATE: &str = "marketplace.order.create";
pub const ORDER_UPDATE: &str = "marketplace.order.update";
/// Every order (and offer) of the tenant, not only the caller's own: an operator's right.
pub const ORDER_READ_ALL: &str = "marketplace.order.read_all";
pub const DISPUTE_READ: &str = "marketplace.dispute.read";
pub const DISPUTE_CREATE: &str = "marketplace.dispute.create";
/// Settle disputes (and see all of them): an operator's right, never a party's by default.
pub const DISPUTE_RESOLVE: &str = "marketplace.dispute.resolve";
