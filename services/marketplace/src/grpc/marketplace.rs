//! MarketplaceService: the trait methods, each building the `Caller` and handing the body to a
//! use case (`listings.rs`, `offers.rs`, `orders.rs`, `disputes.rs`).

use keel_kernel::Caller;
use keel_proto::marketplace::v1 as pb;
use keel_proto::marketplace::v1::marketplace_service_server::MarketplaceService;
use tonic::{Request, Response, Status};

use super::Shared;
use crate::domain::{ListingAction, OrderAction};

pub struct Marketplace(pub Shared);

#[tonic::async_trait]
impl MarketplaceService for Marketplace {
    async fn create_listing(
        &self,
        request: Request<pb::CreateListingRequest>,
    ) -> Result<Response<pb::Listing>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.create_listing_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn get_listing(
        &self,
        request: Request<pb::GetListingRequest>,
    ) -> Result<Response<pb::Listing>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.get_listing_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_listings(
        &self,
        request: Request<pb::ListListingsRequest>,
    ) -> Result<Response<pb::ListListingsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_listings_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn update_listing(
        &self,
        request: Request<pb::UpdateListingRequest>,
    ) -> Result<Response<pb::Listing>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.update_listing_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn publish_listing(
        &self,
        request: Request<pb::PublishListingRequest>,
    ) -> Result<Response<pb::Listing>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let publish = self.listing_transition(
            &caller,
            &request.tenant_id,
            &request.listing_id,
            ListingAction::Publish,
        );
        Ok(Response::new(publish.await?))
    }

    async fn archive_listing(
        &self,
        request: Request<pb::ArchiveListingRequest>,
    ) -> Result<Response<pb::Listing>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let archive = self.listing_transition(
            &caller,
            &request.tenant_id,
            &request.listing_id,
            ListingAction::Archive,
        );
        Ok(Response::new(archive.await?))
    }

    async fn create_offer(
        &self,
        request: Request<pb::CreateOfferRequest>,
    ) -> Result<Response<pb::Offer>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.create_offer_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn list_offers(
        &self,
        request: Request<pb::ListOffersRequest>,
    ) -> Result<Response<pb::ListOffersResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_offers_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn accept_offer(
        &self,
        request: Request<pb::AcceptOfferRequest>,
    ) -> Result<Response<pb::Offer>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.accept_offer_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn reject_offer(
        &self,
        request: Request<pb::RejectOfferRequest>,
    ) -> Result<Response<pb::Offer>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.reject_offer_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn counter_offer(
        &self,
        request: Request<pb::CounterOfferRequest>,
    ) -> Result<Response<pb::Offer>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.counter_offer_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.create_order_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.get_order_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_orders_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let cancel = self.order_transition(
            &caller,
            &request.tenant_id,
            &request.order_id,
            OrderAction::Cancel,
            &request.reason,
        );
        Ok(Response::new(cancel.await?))
    }

    async fn fulfill_order(
        &self,
        request: Request<pb::FulfillOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let fulfill = self.order_transition(
            &caller,
            &request.tenant_id,
            &request.order_id,
            OrderAction::Fulfill,
            "",
        );
        Ok(Response::new(fulfill.await?))
    }

    async fn complete_order(
        &self,
        request: Request<pb::CompleteOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let complete = self.order_transition(
            &caller,
            &request.tenant_id,
            &request.order_id,
            OrderAction::Complete,
            "",
        );
        Ok(Response::new(complete.await?))
    }

    async fn create_dispute(
        &self,
        request: Request<pb::CreateDisputeRequest>,
    ) -> Result<Response<pb::Dispute>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.create_dispute_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn get_dispute(
        &self,
        request: Request<pb::GetDisputeRequest>,
    ) -> Result<Response<pb::Dispute>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.get_dispute_case(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_disputes(
        &self,
        request: Request<pb::ListDisputesRequest>,
    ) -> Result<Response<pb::ListDisputesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_disputes_case(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn resolve_dispute(
        &self,
        request: Request<pb::ResolveDisputeRequest>,
    ) -> Result<Response<pb::Dispute>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.resolve_dispute_case(&caller, request.into_inner())
                .await?,
        ))
    }
}
