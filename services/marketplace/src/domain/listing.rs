//! Listings and their state machine (one table).

use std::fmt;

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId, UserId};
use keel_proto::marketplace::v1 as pb;

use super::ids::ListingId;
use super::machine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum ListingState {
    Draft,
    Published,
    Archived,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListingAction {
    Publish,
    Archive,
    /// Editing title, description, price or quantity.
    Edit,
    /// Changing the currency: only before publishing.
    ChangeCurrency,
}

pub const TRANSITIONS: &[(ListingState, ListingAction, ListingState)] = &[
    (
        ListingState::Draft,
        ListingAction::Publish,
        ListingState::Published,
    ),
    (
        ListingState::Published,
        ListingAction::Archive,
        ListingState::Archived,
    ),
    (
        ListingState::Draft,
        ListingAction::Edit,
        ListingState::Draft,
    ),
    (
        ListingState::Published,
        ListingAction::Edit,
        ListingState::Published,
    ),
    (
        ListingState::Draft,
        ListingAction::ChangeCurrency,
        ListingState::Draft,
    ),
];

impl ListingState {
    pub const ALL: [ListingState; 3] = [
        ListingState::Draft,
        ListingState::Published,
        ListingState::Archived,
    ];

    pub fn apply(self, action: ListingAction) -> Result<ListingState, Error> {
        machine::apply(TRANSITIONS, "listing", self, action)
    }

    /// Offers and orders need a PUBLISHED listing.
    pub fn require_published(self) -> Result<(), Error> {
        if self == ListingState::Published {
            Ok(())
        } else {
            Err(Error::failed_precondition(format!(
                "the listing is {self}; offers and orders need a PUBLISHED listing"
            )))
        }
    }

    pub fn from_proto(state: pb::ListingState) -> Option<ListingState> {
        ListingState::ALL
            .into_iter()
            .find(|s| pb::ListingState::from(*s) == state)
    }
}

impl fmt::Display for ListingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListingState::Draft => "DRAFT",
            ListingState::Published => "PUBLISHED",
            ListingState::Archived => "ARCHIVED",
        })
    }
}

impl fmt::Display for ListingAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListingAction::Publish => "publishing",
            ListingAction::Archive => "archiving",
            ListingAction::Edit => "editing",
            ListingAction::ChangeCurrency => "changing the currency",
        })
    }
}

impl From<ListingState> for pb::ListingState {
    fn from(state: ListingState) -> pb::ListingState {
        match state {
            ListingState::Draft => pb::ListingState::Draft,
            ListingState::Published => pb::ListingState::Published,
            ListingState::Archived => pb::ListingState::Archived,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Listing {
    pub tenant_id: TenantId,
    pub id: ListingId,
    pub seller_id: UserId,
    pub title: String,
    pub description: String,
    pub unit_price: i64,
    pub currency: String,
    pub quantity_available: i64,
    pub state: ListingState,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Listing {
    /// Drafts are their seller's alone; published and archived listings are the tenant's (an
    /// archived one still explains the orders placed on it).
    pub fn visible_to(&self, user: UserId) -> bool {
        self.state != ListingState::Draft || self.seller_id == user
    }

    /// AUTHZ unless `user` sells this listing: sellers manage only their own listings.
    pub fn require_seller(&self, user: UserId) -> Result<(), Error> {
        if self.seller_id == user {
            Ok(())
        } else {
            Err(Error::forbidden("only the listing's seller may do this"))
        }
    }
}

/// A validated new listing.
#[derive(Debug, Clone)]
pub struct NewListing {
    pub title: String,
    pub description: String,
    pub unit_price: i64,
    pub currency: String,
    pub quantity_available: i64,
}

/// The fields an update sets (those named in the mask).
#[derive(Debug, Clone, Default)]
pub struct ListingChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub unit_price: Option<i64>,
    pub quantity_available: Option<i64>,
    pub currency: Option<String>,
}

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

pub fn parse_title(field: &str, value: &str) -> Result<String, Error> {
    let title = value.trim();
    if title.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(title.to_owned())
}

pub fn parse_description(field: &str, value: &str) -> Result<String, Error> {
    if value.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(value.trim().to_owned())
}

pub fn parse_quantity_available(field: &str, value: i64) -> Result<i64, Error> {
    if value < 0 {
        return Err(Error::invalid(field, "must not be negative"));
    }
    Ok(value)
}
