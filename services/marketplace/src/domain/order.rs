//! Orders and their state machine (one table).

use std::fmt;

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId, UserId};
use keel_proto::marketplace::v1 as pb;

use super::ids::{ListingId, OfferId, OrderId};
use super::machine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum OrderState {
    Placed,
    Fulfilled,
    Completed,
    Canceled,
    Disputed,
    Refunded,
}

/// Everything that moves an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderAction {
    /// Buyer or seller, before fulfilment.
    Cancel,
    /// The seller.
    Fulfill,
    /// The buyer confirms receipt.
    Complete,
    /// Buyer or seller, within the dispute window.
    OpenDispute,
    /// A dispute settled for the buyer.
    Refund,
    /// A dispute settled for the seller.
    Release,
}

impl OrderState {
    pub const ALL: [OrderState; 6] = [
        OrderState::Placed,
        OrderState::Fulfilled,
        OrderState::Completed,
        OrderState::Canceled,
        OrderState::Disputed,
        OrderState::Refunded,
    ];

    /// Apply `action` by [`TRANSITIONS`]; FAILED_PRECONDITION for every other move.
    pub fn apply(self, action: OrderAction) -> Result<OrderState, Error> {
        machine::apply(TRANSITIONS, "order", self, action)
    }

    /// The units of a canceled or refunded order go back to the listing.
    pub fn releases_stock(self) -> bool {
        matches!(self, OrderState::Canceled | OrderState::Refunded)
    }
}

impl OrderAction {
    pub const ALL: [OrderAction; 6] = [
        OrderAction::Cancel,
        OrderAction::Fulfill,
        OrderAction::Complete,
        OrderAction::OpenDispute,
        OrderAction::Refund,
        OrderAction::Release,
    ];
}

/// The order state machine, whole. A DISPUTED order only leaves through the dispute's
/// resolution: it is frozen for everything else.
pub const TRANSITIONS: &[(OrderState, OrderAction, OrderState)] = &[
    (
        OrderState::Placed,
        OrderAction::Cancel,
        OrderState::Canceled,
    ),
    (
        OrderState::Placed,
        OrderAction::Fulfill,
        OrderState::Fulfilled,
    ),
    (
        OrderState::Fulfilled,
        OrderAction::Complete,
        OrderState::Completed,
    ),
    (
        OrderState::Fulfilled,
        OrderAction::OpenDispute,
        OrderState::Disputed,
    ),
    (
        OrderState::Disputed,
        OrderAction::Refund,
        OrderState::Refunded,
    ),
    (
        OrderState::Disputed,
        OrderAction::Release,
        OrderState::Completed,
    ),
];

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OrderState::Placed => "PLACED",
            OrderState::Fulfilled => "FULFILLED",
            OrderState::Completed => "COMPLETED",
            OrderState::Canceled => "CANCELED",
            OrderState::Disputed => "DISPUTED",
            OrderState::Refunded => "REFUNDED",
        })
    }
}

impl fmt::Display for OrderAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OrderAction::Cancel => "canceling",
            OrderAction::Fulfill => "fulfilling",
            OrderAction::Complete => "confirming receipt",
            OrderAction::OpenDispute => "opening a dispute",
            OrderAction::Refund => "refunding",
            OrderAction::Release => "releasing to the seller",
        })
    }
}

impl From<OrderState> for pb::OrderState {
    fn from(state: OrderState) -> pb::OrderState {
        match state {
            OrderState::Placed => pb::OrderState::Placed,
            OrderState::Fulfilled => pb::OrderState::Fulfilled,
            OrderState::Completed => pb::OrderState::Completed,
            OrderState::Canceled => pb::OrderState::Canceled,
            OrderState::Disputed => pb::OrderState::Disputed,
            OrderState::Refunded => pb::OrderState::Refunded,
        }
    }
}

impl OrderState {
    /// The domain state of a wire filter; None for UNSPECIFIED.
    pub fn from_proto(state: pb::OrderState) -> Option<OrderState> {
        OrderState::ALL
            .into_iter()
            .find(|s| pb::OrderState::from(*s) == state)
    }
}

#[derive(Debug, Clone)]
pub struct Order {
    pub tenant_id: TenantId,
    pub id: OrderId,
    pub listing_id: ListingId,
    pub offer_id: Option<OfferId>,
    pub buyer_id: UserId,
    pub seller_id: UserId,
    pub quantity: i64,
    pub unit_price: i64,
    pub total_amount: i64,
    pub currency: String,
    pub commission_amount: i64,
    pub refunded_amount: i64,
    pub state: OrderState,
    pub cancel_reason: String,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Order {
    pub fn is_party(&self, user: UserId) -> bool {
        self.buyer_id == user || self.seller_id == user
    }
}

/// What an order is placed with, after the listing was checked.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: OrderId,
    pub listing_id: ListingId,
    pub offer_id: Option<OfferId>,
    pub buyer_id: UserId,
    pub seller_id: UserId,
    pub quantity: i64,
    pub unit_price: i64,
    pub total_amount: i64,
    pub currency: String,
    pub commission_amount: i64,
    pub at: DateTime<Utc>,
}

/// The method CreateOrder's idempotency keys are stored under (and purged by).
pub const CREATE_ORDER_METHOD: &str = "marketplace.CreateOrder";

/// Units to order: at least 1.
pub fn parse_quantity(field: &str, value: i64) -> Result<i64, Error> {
    if value < 1 {
        return Err(Error::invalid(field, "must be at least 1"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_move_outside_the_table_is_a_failed_precondition() {
        for state in OrderState::ALL {
            for action in OrderAction::ALL {
                let listed = TRANSITIONS
                    .iter()
                    .any(|(from, a, _)| *from == state && *a == action);
                match state.apply(action) {
                    Ok(_) => assert!(listed, "{state} {action}"),
                    Err(err) => {
                        assert!(!listed);
                        assert_eq!(err.code(), keel_kernel::ErrorCode::FailedPrecondition);
                        assert!(err.message().contains(&state.to_string()));
                    }
                }
            }
        }
    }

    #[test]
    fn a_disputed_order_is_frozen_but_for_its_settlement() {
        for action in [
            OrderAction::Cancel,
            OrderAction::Fulfill,
            OrderAction::Complete,
        ] {
            assert!(OrderState::Disputed.apply(action).is_err());
        }
    }
}
