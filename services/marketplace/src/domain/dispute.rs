//! Disputes and their state machine (one table).

use std::fmt;

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId, UserId};
use keel_proto::marketplace::v1 as pb;

use super::ids::{DisputeId, OrderId};
use super::machine;
use super::order::OrderAction;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum DisputeState {
    Open,
    Escalated,
    Resolved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisputeAction {
    /// No resolution within the escalation period (the escalation job).
    Escalate,
    Resolve,
}

pub const TRANSITIONS: &[(DisputeState, DisputeAction, DisputeState)] = &[
    (
        DisputeState::Open,
        DisputeAction::Escalate,
        DisputeState::Escalated,
    ),
    (
        DisputeState::Open,
        DisputeAction::Resolve,
        DisputeState::Resolved,
    ),
    (
        DisputeState::Escalated,
        DisputeAction::Resolve,
        DisputeState::Resolved,
    ),
];

impl DisputeState {
    pub const ALL: [DisputeState; 3] = [
        DisputeState::Open,
        DisputeState::Escalated,
        DisputeState::Resolved,
    ];

    pub fn apply(self, action: DisputeAction) -> Result<DisputeState, Error> {
        machine::apply(TRANSITIONS, "dispute", self, action)
    }

    pub fn from_proto(state: pb::DisputeState) -> Option<DisputeState> {
        DisputeState::ALL
            .into_iter()
            .find(|s| pb::DisputeState::from(*s) == state)
    }
}

impl fmt::Display for DisputeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DisputeState::Open => "OPEN",
            DisputeState::Escalated => "ESCALATED",
            DisputeState::Resolved => "RESOLVED",
        })
    }
}

impl fmt::Display for DisputeAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DisputeAction::Escalate => "escalating",
            DisputeAction::Resolve => "resolving",
        })
    }
}

impl From<DisputeState> for pb::DisputeState {
    fn from(state: DisputeState) -> pb::DisputeState {
        match state {
            DisputeState::Open => pb::DisputeState::Open,
            DisputeState::Escalated => pb::DisputeState::Escalated,
            DisputeState::Resolved => pb::DisputeState::Resolved,
        }
    }
}

/// How a dispute was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Resolution {
    RefundBuyer,
    ReleaseToSeller,
}

impl Resolution {
    pub fn parse(field: &str, value: i32) -> Result<Resolution, Error> {
        match pb::DisputeResolution::try_from(value) {
            Ok(pb::DisputeResolution::RefundBuyer) => Ok(Resolution::RefundBuyer),
            Ok(pb::DisputeResolution::ReleaseToSeller) => Ok(Resolution::ReleaseToSeller),
            _ => Err(Error::invalid(
                field,
                "must be REFUND_BUYER or RELEASE_TO_SELLER",
            )),
        }
    }

    /// What settling this way does to the order.
    pub fn order_action(self) -> OrderAction {
        match self {
            Resolution::RefundBuyer => OrderAction::Refund,
            Resolution::ReleaseToSeller => OrderAction::Release,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::RefundBuyer => "refund_buyer",
            Resolution::ReleaseToSeller => "release_to_seller",
        }
    }

    /// The refund for an order of `total`: `requested` (the whole total when 0) for a refund,
    /// nothing for a release. VALIDATION naming `field` above the total, below zero, or with a
    /// release.
    pub fn refund(self, field: &str, requested: i64, total: i64) -> Result<i64, Error> {
        match self {
            Resolution::ReleaseToSeller if requested != 0 => Err(Error::invalid(
                field,
                "must be 0 when the dispute is released to the seller",
            )),
            Resolution::ReleaseToSeller => Ok(0),
            Resolution::RefundBuyer if requested < 0 => {
                Err(Error::invalid(field, "must not be negative"))
            }
            Resolution::RefundBuyer if requested > total => Err(Error::invalid(
                field,
                format!("must not exceed the order total ({total})"),
            )),
            Resolution::RefundBuyer if requested == 0 => Ok(total),
            Resolution::RefundBuyer => Ok(requested),
        }
    }
}

impl From<Resolution> for pb::DisputeResolution {
    fn from(resolution: Resolution) -> pb::DisputeResolution {
        match resolution {
            Resolution::RefundBuyer => pb::DisputeResolution::RefundBuyer,
            Resolution::ReleaseToSeller => pb::DisputeResolution::ReleaseToSeller,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dispute {
    pub tenant_id: TenantId,
    pub id: DisputeId,
    pub order_id: OrderId,
    pub buyer_id: UserId,
    pub seller_id: UserId,
    pub opened_by: UserId,
    pub reason: String,
    pub state: DisputeState,
    pub resolution: Option<Resolution>,
    pub resolution_note: String,
    pub resolved_by: String,
    pub refund_amount: i64,
    pub escalated_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

impl Dispute {
    pub fn is_party(&self, user: UserId) -> bool {
        self.buyer_id == user || self.seller_id == user
    }
}

/// The dispute window: FAILED_PRECONDITION once `window` has passed since fulfilment.
pub fn check_window(
    fulfilled_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    window: chrono::Duration,
) -> Result<(), Error> {
    match fulfilled_at {
        Some(at) if now > at + window => Err(Error::failed_precondition(format!(
            "the dispute window closed at {}",
            (at + window).to_rfc3339()
        ))),
        _ => Ok(()),
    }
}

pub const MAX_TEXT_CHARS: usize = 5_000;

/// A required free text (reason, note), at most [`MAX_TEXT_CHARS`].
pub fn parse_text(field: &str, value: &str) -> Result<String, Error> {
    let text = value.trim();
    if text.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_never_exceeds_the_order_total() {
        let refund = Resolution::RefundBuyer;
        assert_eq!(refund.refund("r", 0, 1000).unwrap(), 1000);
        assert_eq!(refund.refund("r", 400, 1000).unwrap(), 400);
        assert!(refund.refund("r", 1001, 1000).is_err());
        assert!(refund.refund("r", -1, 1000).is_err());
        assert!(Resolution::ReleaseToSeller.refund("r", 5, 1000).is_err());
    }

    #[test]
    fn a_resolved_dispute_cannot_be_resolved_or_escalated() {
        assert!(
            DisputeState::Resolved
                .apply(DisputeAction::Resolve)
                .is_err()
        );
        assert!(
            DisputeState::Resolved
                .apply(DisputeAction::Escalate)
                .is_err()
        );
        assert!(
            DisputeState::Escalated
                .apply(DisputeAction::Escalate)
                .is_err()
        );
    }
}
