//! Offers: a buyer proposes a price, the other party accepts (placing the order), rejects or
//! counters; unanswered offers expire through a durable job.

use keel_kernel::db::TenantTx;
use keel_kernel::grpc::paging::{TimeId, split_page};
use keel_kernel::grpc::{PageSize, PageToken, from_timestamp};
use keel_kernel::jobs::{self, NewJob};
use keel_kernel::{Caller, Error, UserId, Violations, db};
use keel_proto::marketplace::v1 as pb;

use super::marketplace::Marketplace;
use super::orders::{Purchase, place};
use super::user_in_tenant;
use crate::domain::offer::{self, NewOffer};
use crate::domain::order::parse_quantity;
use crate::domain::{
    ListingId, Offer, OfferAction, OfferId, OfferParty, OfferState, money, permissions,
};
use crate::events::{self, Cause};
use crate::jobs::{OFFER_EXPIRY, OfferExpiry};
use crate::repo;

/// Schedule the offer's expiry in the transaction that creates it.
async fn schedule_expiry(tx: &mut TenantTx, offer: &Offer) -> Result<(), Error> {
    let job = NewJob::new(OFFER_EXPIRY, offer.id.to_string(), offer.expires_at)
        .tenant(offer.tenant_id)
        .payload(&OfferExpiry { offer_id: offer.id })?;
    jobs::schedule(tx, job).await?;
    Ok(())
}

impl Marketplace {
    fn offer_expiry(
        &self,
        field: &str,
        requested: Option<&prost_types::Timestamp>,
    ) -> Result<chrono::DateTime<chrono::Utc>, Error> {
        let ctx = &self.0;
        let requested = requested.map(|t| from_timestamp(field, t)).transpose()?;
        offer::expiry(
            field,
            requested,
            ctx.clock.now(),
            ctx.settings.offer_ttl(),
            ctx.settings.max_offer_ttl(),
        )
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id, listing_id = %request.listing_id))]
    pub(super) async fn create_offer_case(
        &self,
        caller: &Caller,
        request: pb::CreateOfferRequest,
    ) -> Result<pb::Offer, Error> {
        let (tenant, buyer) =
            user_in_tenant(caller, &request.tenant_id, permissions::OFFER_CREATE)?;
        let listing_id = ListingId::parse_field("listing_id", &request.listing_id)?;
        let proposal = request
            .offer
            .ok_or_else(|| Error::invalid("offer", "is required"))?;
        let mut fields = Violations::default();
        let unit_price = fields.check(money::parse_price("offer.unit_price", proposal.unit_price));
        let quantity = fields.check(parse_quantity("offer.quantity", proposal.quantity));
        let expires_at =
            fields.check(self.offer_expiry("offer.expire_time", proposal.expire_time.as_ref()));
        fields.finish()?;
        let (Some(unit_price), Some(quantity), Some(expires_at)) =
            (unit_price, quantity, expires_at)
        else {
            return Err(Error::invalid("offer", "is invalid"));
        };

        let ctx = &self.0;
        let now = ctx.clock.now();
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let listing = repo::listings::get(&mut tx, listing_id)
            .await?
            .filter(|l| l.visible_to(buyer))
            .ok_or_else(|| Error::not_found("listing", listing_id))?;
        if listing.seller_id == buyer {
            return Err(Error::failed_precondition(
                "nobody makes an offer on their own listing",
            ));
        }
        listing.state.require_published()?;
        let offer = repo::offers::insert(
            &mut tx,
            &NewOffer {
                id: OfferId::new(),
                listing_id,
                buyer_id: buyer,
                seller_id: listing.seller_id,
                proposed_by: OfferParty::Buyer,
                unit_price,
                quantity,
                currency: listing.currency.clone(),
                expires_at,
                countered_offer_id: None,
                at: now,
            },
        )
        .await?;
        schedule_expiry(&mut tx, &offer).await?;
        ctx.outbox
            .enqueue(&mut tx, events::offer_created(&offer, &Cause::of(caller))?)
            .await?;
        tx.commit().await?;
        Ok((&offer).into())
    }

    pub(super) async fn list_offers_case(
        &self,
        caller: &Caller,
        request: pb::ListOffersRequest,
    ) -> Result<pb::ListOffersResponse, Error> {
        let (tenant, viewer) = user_in_tenant(caller, &request.tenant_id, permissions::OFFER_READ)?;
        let listing_id = ListingId::parse_field("listing_id", &request.listing_id)?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<TimeId>(&request.page_token)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let listing = repo::listings::get(&mut tx, listing_id)
            .await?
            .filter(|l| l.visible_to(viewer))
            .ok_or_else(|| Error::not_found("listing", listing_id))?;
        // The seller sees every offer on the listing, an operator too; anyone else their own.
        let sees_all = listing.seller_id == viewer
            || caller.claims.has_permission(permissions::ORDER_READ_ALL);
        let party = (!sees_all).then_some(viewer);
        let rows =
            repo::offers::list(&mut tx, listing_id, party, after, size.fetch_limit()).await?;
        let (offers, next_page_token) = split_page(rows, size, |o| TimeId {
            at: o.created_at,
            id: o.id.as_uuid(),
        });
        Ok(pb::ListOffersResponse {
            offers: offers.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    /// The offer of `listing` the caller answers, locked: NOT_FOUND unless the caller is a party
    /// (AUTHZ for the party who proposed it).
    async fn offer_to_answer(
        tx: &mut TenantTx,
        listing: &str,
        offer: &str,
        user: UserId,
    ) -> Result<Offer, Error> {
        let listing = ListingId::parse_field("listing_id", listing)?;
        let id = OfferId::parse_field("offer_id", offer)?;
        let offer = repo::offers::lock(tx, id)
            .await?
            .filter(|o| o.listing_id == listing && o.is_party(user))
            .ok_or_else(|| Error::not_found("offer", id))?;
        offer.require_answerer(user)?;
        Ok(offer)
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id, offer_id = %request.offer_id))]
    pub(super) async fn accept_offer_case(
        &self,
        caller: &Caller,
        request: pb::AcceptOfferRequest,
    ) -> Result<pb::Offer, Error> {
        let (tenant, user) =
            user_in_tenant(caller, &request.tenant_id, permissions::LISTING_UPDATE)?;
        let ctx = &self.0;
        let now = ctx.clock.now();
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        // The offer's row lock makes a second, concurrent accept wait and then see ACCEPTED.
        let offer =
            Self::offer_to_answer(&mut tx, &request.listing_id, &request.offer_id, user).await?;
        let next = offer.answer(OfferAction::Accept, now)?;
        let cause = Cause::of(caller);
        let purchase = Purchase {
            listing: offer.listing_id,
            buyer: offer.buyer_id,
            quantity: offer.quantity,
            offer: Some((offer.id, offer.unit_price)),
        };
        let order = place(ctx, &mut tx, &purchase, now, &cause).await?;
        let offer =
            repo::offers::set_state(&mut tx, offer.id, next, Some(order.id), None, now).await?;
        ctx.outbox
            .enqueue(&mut tx, events::offer_accepted(&offer, &cause)?)
            .await?;
        tx.commit().await?;
        Ok((&offer).into())
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id, offer_id = %request.offer_id))]
    pub(super) async fn reject_offer_case(
        &self,
        caller: &Caller,
        request: pb::RejectOfferRequest,
    ) -> Result<pb::Offer, Error> {
        let (tenant, user) =
            user_in_tenant(caller, &request.tenant_id, permissions::LISTING_UPDATE)?;
        let ctx = &self.0;
        let now = ctx.clock.now();
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let offer =
            Self::offer_to_answer(&mut tx, &request.listing_id, &request.offer_id, user).await?;
        let next = offer.answer(OfferAction::Reject, now)?;
        let offer = repo::offers::set_state(&mut tx, offer.id, next, None, None, now).await?;
        ctx.outbox
            .enqueue(&mut tx, events::offer_rejected(&offer, &Cause::of(caller))?)
            .await?;
        tx.commit().await?;
        Ok((&offer).into())
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id, offer_id = %request.offer_id))]
    pub(super) async fn counter_offer_case(
        &self,
        caller: &Caller,
        request: pb::CounterOfferRequest,
    ) -> Result<pb::Offer, Error> {
        let (tenant, user) =
            user_in_tenant(caller, &request.tenant_id, permissions::LISTING_UPDATE)?;
        let mut fields = Violations::default();
        let unit_price = fields.check(money::parse_price("unit_price", request.unit_price));
        let quantity = match request.quantity {
            0 => None,
            n => fields.check(parse_quantity("quantity", n)),
        };
        let expires_at =
            fields.check(self.offer_expiry("expire_time", request.expire_time.as_ref()));
        fields.finish()?;
        let (Some(unit_price), Some(expires_at)) = (unit_price, expires_at) else {
            return Err(Error::invalid("unit_price", "is invalid"));
        };

        let ctx = &self.0;
        let now = ctx.clock.now();
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let original =
            Self::offer_to_answer(&mut tx, &request.listing_id, &request.offer_id, user).await?;
        let next = original.answer(OfferAction::Counter, now)?;
        let listing = repo::listings::get(&mut tx, original.listing_id)
            .await?
            .ok_or_else(|| Error::not_found("listing", original.listing_id))?;
        listing.state.require_published()?;
        let counter = repo::offers::insert(
            &mut tx,
            &NewOffer {
                id: OfferId::new(),
                listing_id: original.listing_id,
                buyer_id: original.buyer_id,
                seller_id: original.seller_id,
                proposed_by: match original.proposed_by {
                    OfferParty::Buyer => OfferParty::Seller,
                    OfferParty::Seller => OfferParty::Buyer,
                },
                unit_price,
                quantity: quantity.unwrap_or(original.quantity),
                currency: original.currency.clone(),
                expires_at,
                countered_offer_id: Some(original.id),
                at: now,
            },
        )
        .await?;
        debug_assert_eq!(next, OfferState::Rejected);
        let original =
            repo::offers::set_state(&mut tx, original.id, next, None, Some(counter.id), now)
                .await?;
        schedule_expiry(&mut tx, &counter).await?;
        let cause = Cause::of(caller);
        ctx.outbox
            .enqueue(
                &mut tx,
                events::offer_countered(&original, &counter, &cause)?,
            )
            .await?;
        ctx.outbox
            .enqueue(&mut tx, events::offer_created(&counter, &cause)?)
            .await?;
        tx.commit().await?;
        Ok((&counter).into())
    }
}
