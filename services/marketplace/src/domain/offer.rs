//! Offers and counter-offers, and their state machine (one table).

use std::fmt;

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId, UserId};
use keel_proto::marketplace::v1 as pb;

use super::ids::{ListingId, OfferId, OrderId};
use super::machine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum OfferState {
    Pending,
    Accepted,
    Rejected,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferAction {
    Accept,
    Reject,
    /// Rejected with a counter-offer.
    Counter,
    /// `expire_time` passed without an answer (the expiry job).
    Expire,
}

pub const TRANSITIONS: &[(OfferState, OfferAction, OfferState)] = &[
    (
        OfferState::Pending,
        OfferAction::Accept,
        OfferState::Accepted,
    ),
    (
        OfferState::Pending,
        OfferAction::Reject,
        OfferState::Rejected,
    ),
    (
        OfferState::Pending,
        OfferAction::Counter,
        OfferState::Rejected,
    ),
    (
        OfferState::Pending,
        OfferAction::Expire,
        OfferState::Expired,
    ),
];

impl OfferState {
    pub const ALL: [OfferState; 4] = [
        OfferState::Pending,
        OfferState::Accepted,
        OfferState::Rejected,
        OfferState::Expired,
    ];

    pub fn apply(self, action: OfferAction) -> Result<OfferState, Error> {
        machine::apply(TRANSITIONS, "offer", self, action)
    }
}

impl fmt::Display for OfferState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OfferState::Pending => "PENDING",
            OfferState::Accepted => "ACCEPTED",
            OfferState::Rejected => "REJECTED",
            OfferState::Expired => "EXPIRED",
        })
    }
}

impl fmt::Display for OfferAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OfferAction::Accept => "accepting",
            OfferAction::Reject => "rejecting",
            OfferAction::Counter => "countering",
            OfferAction::Expire => "expiring",
        })
    }
}

impl From<OfferState> for pb::OfferState {
    fn from(state: OfferState) -> pb::OfferState {
        match state {
            OfferState::Pending => pb::OfferState::Pending,
            OfferState::Accepted => pb::OfferState::Accepted,
            OfferState::Rejected => pb::OfferState::Rejected,
            OfferState::Expired => pb::OfferState::Expired,
        }
    }
}

/// Who proposed an offer; the other party answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum OfferParty {
    Buyer,
    Seller,
}

impl OfferParty {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferParty::Buyer => "buyer",
            OfferParty::Seller => "seller",
        }
    }
}

impl From<OfferParty> for pb::OfferParty {
    fn from(party: OfferParty) -> pb::OfferParty {
        match party {
            OfferParty::Buyer => pb::OfferParty::Buyer,
            OfferParty::Seller => pb::OfferParty::Seller,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Offer {
    pub tenant_id: TenantId,
    pub id: OfferId,
    pub listing_id: ListingId,
    pub buyer_id: UserId,
    pub seller_id: UserId,
    pub proposed_by: OfferParty,
    pub unit_price: i64,
    pub quantity: i64,
    pub currency: String,
    pub state: OfferState,
    pub expires_at: DateTime<Utc>,
    pub order_id: Option<OrderId>,
    pub counter_offer_id: Option<OfferId>,
    pub countered_offer_id: Option<OfferId>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

impl Offer {
    /// The user who answers (accepts, rejects, counters) this offer: the party that did not
    /// propose it.
    pub fn answerer(&self) -> UserId {
        match self.proposed_by {
            OfferParty::Buyer => self.seller_id,
            OfferParty::Seller => self.buyer_id,
        }
    }

    /// AUTHZ unless `user` may answer this offer.
    pub fn require_answerer(&self, user: UserId) -> Result<(), Error> {
        if self.answerer() == user {
            Ok(())
        } else {
            Err(Error::forbidden(
                "only the party the offer was made to may answer it",
            ))
        }
    }

    /// Apply `action` at `now`: a PENDING offer past its expiry can no longer be answered.
    pub fn answer(&self, action: OfferAction, now: DateTime<Utc>) -> Result<OfferState, Error> {
        let next = self.state.apply(action)?;
        if action != OfferAction::Expire && now >= self.expires_at {
            return Err(Error::failed_precondition(format!(
                "the offer expired at {}",
                self.expires_at.to_rfc3339()
            )));
        }
        Ok(next)
    }

    pub fn is_party(&self, user: UserId) -> bool {
        self.buyer_id == user || self.seller_id == user
    }
}

/// A validated new offer (or counter-offer).
#[derive(Debug, Clone)]
pub struct NewOffer {
    pub id: OfferId,
    pub listing_id: ListingId,
    pub buyer_id: UserId,
    pub seller_id: UserId,
    pub proposed_by: OfferParty,
    pub unit_price: i64,
    pub quantity: i64,
    pub currency: String,
    pub expires_at: DateTime<Utc>,
    pub countered_offer_id: Option<OfferId>,
    pub at: DateTime<Utc>,
}

/// The requested expiry, checked against now and the longest lifetime allowed; `default_ttl`
/// from now when none was asked for.
pub fn expiry(
    field: &str,
    requested: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    default_ttl: chrono::Duration,
    max_ttl: chrono::Duration,
) -> Result<DateTime<Utc>, Error> {
    let Some(at) = requested else {
        return Ok(now + default_ttl);
    };
    if at <= now {
        return Err(Error::invalid(field, "must be in the future"));
    }
    if at > now + max_ttl {
        return Err(Error::invalid(
            field,
            format!("must be at most {} hours from now", max_ttl.num_hours()),
        ));
    }
    Ok(at)
}
