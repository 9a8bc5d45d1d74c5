//! Every change publishes its event, read back from JetStream: the type, the tenant, the
//! aggregate and its version.

use keel_kernel::{ErrorCode, TenantId};
use keel_proto::marketplace::v1 as pb;
use keel_testkit::{assert_status, payload};

use crate::support::{TestApp, cancel, complete, dispute, fulfill, order, resolve};

#[tokio::test]
async fn every_change_publishes_its_event_with_the_aggregate_version() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer, operator) = (app.user(tenant), app.user(tenant), app.operator(tenant));
    let listing = app.listing(&seller, 2_000, "EUR", 10).await;

    let offer = |price: i64| pb::CreateOfferRequest {
        tenant_id: buyer.tenant_id(),
        listing_id: listing.id.clone(),
        offer: Some(pb::Offer {
            unit_price: price,
            quantity: 1,
            ..Default::default()
        }),
    };
    let rejected = buyer
        .client
        .clone()
        .create_offer(offer(1_500))
        .await
        .unwrap()
        .into_inner();
    let answer = |id: &str| pb::RejectOfferRequest {
        tenant_id: seller.tenant_id(),
        listing_id: listing.id.clone(),
        offer_id: id.into(),
    };
    seller
        .client
        .clone()
        .reject_offer(answer(&rejected.id))
        .await
        .unwrap();
    // Answered once: a second rejection and an acceptance are refused.
    assert_status(
        seller
            .client
            .clone()
            .reject_offer(answer(&rejected.id))
            .await,
        ErrorCode::FailedPrecondition,
    );
    assert_status(
        seller
            .client
            .clone()
            .accept_offer(pb::AcceptOfferRequest {
                tenant_id: seller.tenant_id(),
                listing_id: listing.id.clone(),
                offer_id: rejected.id.clone(),
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    let accepted = buyer
        .client
        .clone()
        .create_offer(offer(1_800))
        .await
        .unwrap()
        .into_inner();
    seller
        .client
        .clone()
        .accept_offer(pb::AcceptOfferRequest {
            tenant_id: seller.tenant_id(),
            listing_id: listing.id.clone(),
            offer_id: accepted.id.clone(),
        })
        .await
        .unwrap();

    let canceled = order(&buyer, &listing.id, 1).await;
    cancel(&buyer, &canceled.id).await.unwrap();
    let completed = order(&buyer, &listing.id, 1).await;
    fulfill(&seller, &completed.id).await.unwrap();
    complete(&buyer, &completed.id).await.unwrap();
    let disputed = order(&buyer, &listing.id, 1).await;
    fulfill(&seller, &disputed.id).await.unwrap();
    let opened = dispute(&buyer, &disputed.id).await.unwrap();
    resolve(&operator, &opened.id, pb::DisputeResolution::RefundBuyer, 0)
        .await
        .unwrap();
    seller
        .client
        .clone()
        .archive_listing(pb::ArchiveListingRequest {
            tenant_id: seller.tenant_id(),
            listing_id: listing.id.clone(),
        })
        .await
        .unwrap();

    let expected = [
        ("marketplace.listing.published", 1),
        ("marketplace.listing.archived", 1),
        ("marketplace.offer.created", 2),
        ("marketplace.offer.rejected", 1),
        ("marketplace.offer.accepted", 1),
        // The accepted offer's order and three more.
        ("marketplace.order.placed", 4),
        ("marketplace.order.canceled", 1),
        ("marketplace.order.fulfilled", 2),
        ("marketplace.order.completed", 1),
        ("marketplace.order.refunded", 1),
        ("marketplace.dispute.opened", 1),
        ("marketplace.dispute.resolved", 1),
    ];
    let total: u64 = expected.iter().map(|(_, n)| *n as u64).sum();
    let log = app.events().await;
    let events = log.read(total).await;
    for (event_type, count) in expected {
        let of_type: Vec<_> = events
            .iter()
            .filter(|e| e.event_type == event_type)
            .collect();
        assert_eq!(of_type.len(), count, "{event_type}");
        for event in of_type {
            assert_eq!(event.tenant_id, tenant.to_string(), "{event_type}");
            assert!(event.aggregate_version >= 1, "{event_type}");
        }
    }
    // One order's events: placed, fulfilled, completed, each with a higher version.
    let versions: Vec<i64> = events
        .iter()
        .filter(|e| e.aggregate_id == completed.id)
        .map(|e| e.aggregate_version)
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    let refunded = events
        .iter()
        .find(|e| e.event_type == "marketplace.order.refunded")
        .unwrap();
    let refunded: pb::OrderRefunded = payload(refunded);
    assert_eq!(
        (refunded.order_id.as_str(), refunded.refund_amount),
        (disputed.id.as_str(), 2_000)
    );
    app.stop().await;
}
