//! Listings: create, read, search, edit, publish, archive. Sellers manage only their own.

use keel_kernel::grpc::paging::{TimeId, split_page};
use keel_kernel::grpc::{PageSize, PageToken};
use keel_kernel::{Caller, Error, UserId, db};
use keel_proto::marketplace::v1 as pb;

use super::convert::{listing_changes, listing_state_filter};
use super::marketplace::Marketplace;
use super::user_in_tenant;
use crate::domain::listing::NewListing;
use crate::domain::money::{self, Currency};
use crate::domain::{ListingAction, ListingId, permissions};
use crate::events::{self, Cause};
use crate::repo;
use crate::repo::listings::Filter;
use keel_kernel::search;

impl Marketplace {
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn create_listing_case(
        &self,
        caller: &Caller,
        request: pb::CreateListingRequest,
    ) -> Result<pb::Listing, Error> {
        let (tenant, seller) =
            user_in_tenant(caller, &request.tenant_id, permissions::LISTING_CREATE)?;
        let new = NewListing::try_from(request.listing)?;
        let ctx = &self.0;
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let listing =
            repo::listings::insert(&mut tx, ListingId::new(), seller, &new, ctx.clock.now())
                .await?;
        tx.commit().await?;
        Ok((&listing).into())
    }

    pub(super) async fn get_listing_case(
        &self,
        caller: &Caller,
        request: pb::GetListingRequest,
    ) -> Result<pb::Listing, Error> {
        let (tenant, viewer) =
            user_in_tenant(caller, &request.tenant_id, permissions::LISTING_READ)?;
        let id = ListingId::parse_field("listing_id", &request.listing_id)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let listing = repo::listings::get(&mut tx, id)
            .await?
            .filter(|l| l.visible_to(viewer))
            .ok_or_else(|| Error::not_found("listing", id))?;
        Ok((&listing).into())
    }

    pub(super) async fn list_listings_case(
        &self,
        caller: &Caller,
        request: pb::ListListingsRequest,
    ) -> Result<pb::ListListingsResponse, Error> {
        let (tenant, viewer) =
            user_in_tenant(caller, &request.tenant_id, permissions::LISTING_READ)?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<TimeId>(&request.page_token)?;
        let filter = Filter {
            state: listing_state_filter(request.state)?,
            seller: match request.seller_id.as_str() {
                "" => None,
                id => Some(UserId::parse_field("seller_id", id)?),
            },
            min_unit_price: request
                .min_unit_price
                .map(|p| money::parse_price("min_unit_price", p))
                .transpose()?,
            max_unit_price: request
                .max_unit_price
                .map(|p| money::parse_price("max_unit_price", p))
                .transpose()?,
            query: search::query(&request.query),
            currency: match request.currency.as_str() {
                "" => None,
                code => Some(Currency::parse("currency", code)?.code().to_owned()),
            },
        };
        if let (Some(min), Some(max)) = (filter.min_unit_price, filter.max_unit_price)
            && min > max
        {
            return Err(Error::invalid(
                "min_unit_price",
                "must not be above max_unit_price",
            ));
        }
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let rows =
            repo::listings::list(&mut tx, viewer, &filter, after, size.fetch_limit()).await?;
        let (listings, next_page_token) = split_page(rows, size, |l| TimeId {
            at: l.created_at,
            id: l.id.as_uuid(),
        });
        Ok(pb::ListListingsResponse {
            listings: listings.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id, listing_id = %request.listing_id))]
    pub(super) async fn update_listing_case(
        &self,
        caller: &Caller,
        request: pb::UpdateListingRequest,
    ) -> Result<pb::Listing, Error> {
        let (tenant, seller) =
            user_in_tenant(caller, &request.tenant_id, permissions::LISTING_UPDATE)?;
        let id = ListingId::parse_field("listing_id", &request.listing_id)?;
        let changes = listing_changes(request.listing, request.update_mask)?;
        let ctx = &self.0;
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let mut listing = repo::listings::lock(&mut tx, id)
            .await?
            .filter(|l| l.visible_to(seller))
            .ok_or_else(|| Error::not_found("listing", id))?;
        listing.require_seller(seller)?;
        listing.state.apply(ListingAction::Edit)?;
        if let Some(currency) = changes.currency {
            if currency != listing.currency {
                // A listing's currency is fixed once it is published.
                listing.state.apply(ListingAction::ChangeCurrency)?;
            }
            listing.currency = currency;
        }
        if let Some(title) = changes.title {
            listing.title = title;
        }
        if let Some(description) = changes.description {
            listing.description = description;
        }
        if let Some(unit_price) = changes.unit_price {
            listing.unit_price = unit_price;
        }
        if let Some(quantity) = changes.quantity_available {
            listing.quantity_available = quantity;
        }
        let listing = repo::listings::save(&mut tx, &listing, ctx.clock.now()).await?;
        tx.commit().await?;
        Ok((&listing).into())
    }

    /// Publish or archive the caller's own listing, with its event.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, listing_id = %listing_id, action = %action))]
    pub(super) async fn listing_transition(
        &self,
        caller: &Caller,
        tenant: &str,
        listing_id: &str,
        action: ListingAction,
    ) -> Result<pb::Listing, Error> {
        let (tenant, seller) = user_in_tenant(caller, tenant, permissions::LISTING_UPDATE)?;
        let id = ListingId::parse_field("listing_id", listing_id)?;
        let ctx = &self.0;
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let mut listing = repo::listings::lock(&mut tx, id)
            .await?
            .filter(|l| l.visible_to(seller))
            .ok_or_else(|| Error::not_found("listing", id))?;
        listing.require_seller(seller)?;
        listing.state = listing.state.apply(action)?;
        let listing = repo::listings::save(&mut tx, &listing, ctx.clock.now()).await?;
        let cause = Cause::of(caller);
        let event = match action {
            ListingAction::Archive => events::listing_archived(&listing, &cause)?,
            _ => events::listing_published(&listing, &cause)?,
        };
        ctx.outbox.enqueue(&mut tx, event).await?;
        tx.commit().await?;
        Ok((&listing).into())
    }
}
