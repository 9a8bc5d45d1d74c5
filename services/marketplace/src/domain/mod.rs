//! Marketplace's domain: validated values, money, and the state machines (one table each), with
//! no SQL and no tonic.
//!
//! Values are built from request fields through `parse` functions naming the field at fault.
//! State refusals are FAILED_PRECONDITION naming the current state and what is allowed.

pub mod dispute;
pub mod ids;
pub mod listing;
pub mod machine;
pub mod money;
pub mod offer;
pub mod order;
pub mod permissions;

pub use dispute::{Dispute, DisputeAction, DisputeState, Resolution};
pub use ids::{DisputeId, ListingId, OfferId, OrderId};
pub use listing::{Listing, ListingAction, ListingState};
pub use money::{Commission, Currency};
pub use offer::{Offer, OfferAction, OfferParty, OfferState};
pub use order::{Order, OrderAction, OrderState};
