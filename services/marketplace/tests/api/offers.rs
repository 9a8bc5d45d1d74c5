//! Offers: accepted once (raced), at the offered price with the reservation; countered; expired
//! by a durable job on the test clock; no offers on one's own listing.

use futures::future::join_all;
use keel_kernel::grpc::timestamp;
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::marketplace::v1 as pb;
use keel_testkit::{assert_status, payload};

use crate::support::{TestApp, User, get_listing, get_order};

async fn make_offer(
    buyer: &User,
    listing: &str,
    unit_price: i64,
    quantity: i64,
    expire_time: Option<prost_types::Timestamp>,
) -> Result<pb::Offer, tonic::Status> {
    buyer
        .client
        .clone()
        .create_offer(pb::CreateOfferRequest {
            tenant_id: buyer.tenant_id(),
            listing_id: listing.into(),
            offer: Some(pb::Offer {
                unit_price,
                quantity,
                expire_time,
                ..Default::default()
            }),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn accept(user: &User, offer: &pb::Offer) -> Result<pb::Offer, tonic::Status> {
    user.client
        .clone()
        .accept_offer(pb::AcceptOfferRequest {
            tenant_id: user.tenant_id(),
            listing_id: offer.listing_id.clone(),
            offer_id: offer.id.clone(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn offers(user: &User, listing: &str) -> Vec<pb::Offer> {
    user.client
        .clone()
        .list_offers(pb::ListOffersRequest {
            tenant_id: user.tenant_id(),
            listing_id: listing.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .offers
}

#[tokio::test]
async fn nobody_makes_an_offer_on_their_own_listing() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let seller = app.user(tenant);
    let listing = app.listing(&seller, 1_000, "EUR", 5).await;
    assert_status(
        make_offer(&seller, &listing.id, 900, 1, None).await,
        ErrorCode::FailedPrecondition,
    );
    app.stop().await;
}

#[tokio::test]
async fn an_accepted_offer_places_an_order_at_the_offered_price_and_reserves_the_units() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 5).await;
    let offer = make_offer(&buyer, &listing.id, 850, 3, None).await.unwrap();
    assert_eq!(offer.state, pb::OfferState::Pending as i32);
    assert_eq!(offer.proposed_by, pb::OfferParty::Buyer as i32);
    // The buyer cannot accept their own offer.
    assert_status(accept(&buyer, &offer).await, ErrorCode::Authz);

    let accepted = accept(&seller, &offer).await.unwrap();
    assert_eq!(accepted.state, pb::OfferState::Accepted as i32);
    let placed = get_order(&buyer, &accepted.order_id).await;
    assert_eq!((placed.unit_price, placed.total_amount), (850, 2_550));
    assert_eq!(placed.offer_id, offer.id);
    assert_eq!(placed.buyer_id, buyer.id.to_string());
    assert_eq!(
        get_listing(&seller, &listing.id).await.quantity_available,
        2
    );

    // More than is left cannot be accepted: the offer stays PENDING.
    let too_many = make_offer(&buyer, &listing.id, 900, 3, None).await.unwrap();
    assert_status(
        accept(&seller, &too_many).await,
        ErrorCode::FailedPrecondition,
    );
    let listed = offers(&seller, &listing.id).await;
    let still = listed.iter().find(|o| o.id == too_many.id).unwrap();
    assert_eq!(still.state, pb::OfferState::Pending as i32);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_accepts_of_one_offer_place_one_order() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 100).await;
    let offer = make_offer(&buyer, &listing.id, 800, 2, None).await.unwrap();

    let answers = join_all((0..12).map(|_| {
        let seller = seller.clone();
        let offer = offer.clone();
        tokio::spawn(async move { accept(&seller, &offer).await })
    }))
    .await;
    let mut accepted = Vec::new();
    for answer in answers {
        match answer.unwrap() {
            Ok(offer) => accepted.push(offer),
            Err(status) => {
                assert_status::<()>(Err(status), ErrorCode::FailedPrecondition);
            }
        }
    }
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        get_listing(&seller, &listing.id).await.quantity_available,
        98
    );
    let orders = buyer
        .client
        .clone()
        .list_orders(pb::ListOrdersRequest {
            tenant_id: buyer.tenant_id(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .orders;
    assert_eq!(orders.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_unanswered_offer_expires_at_its_expire_time_through_a_job() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 5).await;
    let expire = app.now() + chrono::Duration::hours(2);
    let offer = make_offer(&buyer, &listing.id, 900, 1, Some(timestamp(expire)))
        .await
        .unwrap();
    // A default offer lasts the configured lifetime.
    let lasting = make_offer(&buyer, &listing.id, 950, 1, None).await.unwrap();
    assert_eq!(
        lasting.expire_time.unwrap().seconds,
        (app.now() + app.settings.offer_ttl()).timestamp()
    );
    // Past expiry offers are refused at once.
    assert_status(
        make_offer(&buyer, &listing.id, 900, 1, Some(timestamp(app.now()))).await,
        ErrorCode::Validation,
    );

    app.advance(chrono::Duration::minutes(119)).await;
    let state_of =
        |offers: &[pb::Offer], id: &str| offers.iter().find(|o| o.id == id).unwrap().state;
    assert_eq!(
        state_of(&offers(&buyer, &listing.id).await, &offer.id),
        pb::OfferState::Pending as i32
    );
    app.advance(chrono::Duration::minutes(2)).await;
    let now_listed = offers(&buyer, &listing.id).await;
    assert_eq!(
        state_of(&now_listed, &offer.id),
        pb::OfferState::Expired as i32
    );
    assert_eq!(
        state_of(&now_listed, &lasting.id),
        pb::OfferState::Pending as i32
    );
    assert_status(accept(&seller, &offer).await, ErrorCode::FailedPrecondition);

    let log = app.events().await;
    let expired = log.of_type("marketplace.offer.expired", 1).await;
    assert_eq!(expired.len(), 1);
    assert_eq!(payload::<pb::OfferExpired>(&expired[0]).offer_id, offer.id);
    app.stop().await;
}

#[tokio::test]
async fn a_counter_offer_rejects_the_original_with_a_link_and_the_buyer_answers_it() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "JPY", 5).await;
    let offer = make_offer(&buyer, &listing.id, 700, 2, None).await.unwrap();

    let counter_request = pb::CounterOfferRequest {
        tenant_id: seller.tenant_id(),
        listing_id: listing.id.clone(),
        offer_id: offer.id.clone(),
        unit_price: 850,
        quantity: 0,
        expire_time: None,
    };
    // The buyer does not counter their own offer.
    assert_status(
        buyer
            .client
            .clone()
            .counter_offer(counter_request.clone())
            .await,
        ErrorCode::Authz,
    );
    let counter = seller
        .client
        .clone()
        .counter_offer(counter_request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counter.state, pb::OfferState::Pending as i32);
    assert_eq!(counter.countered_offer_id, offer.id);
    assert_eq!(counter.proposed_by, pb::OfferParty::Seller as i32);
    assert_eq!((counter.unit_price, counter.quantity), (850, 2));

    let listed = offers(&buyer, &listing.id).await;
    let original = listed.iter().find(|o| o.id == offer.id).unwrap();
    assert_eq!(original.state, pb::OfferState::Rejected as i32);
    assert_eq!(original.counter_offer_id, counter.id);
    // The original is answered already; the seller cannot accept their own counter.
    assert_status(accept(&seller, &offer).await, ErrorCode::FailedPrecondition);
    assert_status(accept(&seller, &counter).await, ErrorCode::Authz);

    let accepted = accept(&buyer, &counter).await.unwrap();
    let placed = get_order(&buyer, &accepted.order_id).await;
    assert_eq!((placed.unit_price, placed.total_amount), (850, 1_700));
    assert_eq!(placed.seller_id, seller.id.to_string());

    let log = app.events().await;
    let countered = log.of_type("marketplace.offer.countered", 1).await;
    assert_eq!(
        payload::<pb::OfferCountered>(&countered[0]).counter_offer_id,
        counter.id
    );
    app.stop().await;
}

#[tokio::test]
async fn buyers_see_their_own_offers_and_the_seller_sees_them_all() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, alice, bob) = (app.user(tenant), app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 5).await;
    make_offer(&alice, &listing.id, 900, 1, None).await.unwrap();
    make_offer(&bob, &listing.id, 910, 1, None).await.unwrap();
    assert_eq!(offers(&seller, &listing.id).await.len(), 2);
    let of_alice = offers(&alice, &listing.id).await;
    assert_eq!(of_alice.len(), 1);
    assert_eq!(of_alice[0].buyer_id, alice.id.to_string());
    app.stop().await;
}

#[tokio::test]
async fn an_offers_expiry_survives_a_restart_of_the_service() {
    let mut app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 5).await;
    let expire = app.now() + chrono::Duration::hours(1);
    let offer = make_offer(&buyer, &listing.id, 900, 1, Some(timestamp(expire)))
        .await
        .unwrap();
    app.restart().await;
    let seller = app.reconnect(&seller);
    app.advance(chrono::Duration::hours(2)).await;
    let listed = offers(&seller, &listing.id).await;
    assert_eq!(listed[0].id, offer.id);
    assert_eq!(listed[0].state, pb::OfferState::Expired as i32);
    app.stop().await;
}
