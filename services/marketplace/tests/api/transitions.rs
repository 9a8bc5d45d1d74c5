//! Every move the order, dispute, listing and offer tables do not list is refused with FAILED_PRECONDITION
//! through the API; the cases are generated from the domain's tables, not written by hand.

use keel_kernel::{ErrorCode, TenantId};
use keel_marketplace::domain::dispute::TRANSITIONS as DISPUTE_TRANSITIONS;
use keel_marketplace::domain::listing::TRANSITIONS as LISTING_TRANSITIONS;
use keel_marketplace::domain::offer::TRANSITIONS as OFFER_TRANSITIONS;
use keel_marketplace::domain::order::TRANSITIONS as ORDER_TRANSITIONS;
use keel_marketplace::domain::{
    DisputeAction, DisputeState, ListingAction, ListingState, OfferAction, OfferState, OrderAction,
    OrderState,
};
use keel_proto::marketplace::v1 as pb;
use keel_testkit::assert_status;

use crate::support::{
    TestApp, User, cancel, complete, dispute, fulfill, get_order, order, publish, resolve,
};

struct Parties {
    seller: User,
    buyer: User,
    operator: User,
    listing: String,
}

/// An order driven through the API into `state`, and its open dispute if it has one.
async fn order_in(parties: &Parties, state: OrderState) -> (pb::Order, Option<pb::Dispute>) {
    let Parties {
        seller,
        buyer,
        operator,
        listing,
    } = parties;
    let placed = order(buyer, listing, 1).await;
    let id = placed.id.clone();
    let mut open = None;
    match state {
        OrderState::Placed => {}
        OrderState::Canceled => {
            cancel(buyer, &id).await.unwrap();
        }
        OrderState::Fulfilled => {
            fulfill(seller, &id).await.unwrap();
        }
        OrderState::Completed => {
            fulfill(seller, &id).await.unwrap();
            complete(buyer, &id).await.unwrap();
        }
        OrderState::Disputed => {
            fulfill(seller, &id).await.unwrap();
            open = Some(dispute(buyer, &id).await.unwrap());
        }
        OrderState::Refunded => {
            fulfill(seller, &id).await.unwrap();
            let opened = dispute(buyer, &id).await.unwrap();
            resolve(operator, &opened.id, pb::DisputeResolution::RefundBuyer, 0)
                .await
                .unwrap();
        }
    }
    let current = get_order(buyer, &id).await;
    assert_eq!(current.state, pb::OrderState::from(state) as i32);
    (current, open)
}

/// Try `action` on the order as the party entitled to it; the order's state afterwards.
async fn attempt(
    parties: &Parties,
    action: OrderAction,
    order: &pb::Order,
    open: Option<&pb::Dispute>,
) -> Option<Result<pb::OrderState, tonic::Status>> {
    let state = |o: pb::Order| pb::OrderState::try_from(o.state).unwrap();
    Some(match action {
        OrderAction::Cancel => cancel(&parties.buyer, &order.id).await.map(state),
        OrderAction::Fulfill => fulfill(&parties.seller, &order.id).await.map(state),
        OrderAction::Complete => complete(&parties.buyer, &order.id).await.map(state),
        OrderAction::OpenDispute => match dispute(&parties.seller, &order.id).await {
            Ok(_) => Ok(state(get_order(&parties.buyer, &order.id).await)),
            Err(status) => Err(status),
        },
        // Settling needs an unresolved dispute, which only a DISPUTED order has; the dispute
        // table's test covers resolving anything else.
        OrderAction::Refund | OrderAction::Release => {
            let open = open?;
            let resolution = if action == OrderAction::Refund {
                pb::DisputeResolution::RefundBuyer
            } else {
                pb::DisputeResolution::ReleaseToSeller
            };
            match resolve(&parties.operator, &open.id, resolution, 0).await {
                Ok(_) => Ok(state(get_order(&parties.buyer, &order.id).await)),
                Err(status) => Err(status),
            }
        }
    })
}

#[tokio::test]
async fn every_order_move_outside_the_table_is_a_failed_precondition_and_every_listed_one_works() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let seller = app.user(tenant);
    let listing = app.listing(&seller, 700, "EUR", 1_000).await;
    let parties = Parties {
        seller,
        buyer: app.user(tenant),
        operator: app.operator(tenant),
        listing: listing.id,
    };
    let mut refused = 0;
    let mut allowed = 0;
    for state in OrderState::ALL {
        for action in OrderAction::ALL {
            let (current, open) = order_in(&parties, state).await;
            let Some(outcome) = attempt(&parties, action, &current, open.as_ref()).await else {
                continue;
            };
            let listed = ORDER_TRANSITIONS
                .iter()
                .find(|(from, a, _)| *from == state && *a == action);
            match listed {
                Some((_, _, to)) => {
                    let reached = outcome.unwrap_or_else(|s| panic!("{state} {action}: {s:?}"));
                    assert_eq!(reached, pb::OrderState::from(*to), "{state} {action}");
                    allowed += 1;
                }
                None => {
                    assert_status(outcome, ErrorCode::FailedPrecondition);
                    refused += 1;
                }
            }
        }
    }
    assert_eq!(allowed, ORDER_TRANSITIONS.len());
    // Four API moves from each of six states, less the four listed ones; settling from DISPUTED
    // is listed both ways.
    assert_eq!(refused, 4 * 6 - 4);
    app.stop().await;
}

#[tokio::test]
async fn every_dispute_move_outside_the_table_is_a_failed_precondition() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let seller = app.user(tenant);
    let listing = app.listing(&seller, 700, "EUR", 1_000).await;
    let parties = Parties {
        seller,
        buyer: app.user(tenant),
        operator: app.operator(tenant),
        listing: listing.id,
    };
    for state in DisputeState::ALL {
        let (disputed, open) = order_in(&parties, OrderState::Disputed).await;
        let open = open.unwrap();
        match state {
            DisputeState::Open => {}
            DisputeState::Escalated => {
                app.advance(app.settings.dispute_escalation() + chrono::Duration::minutes(1))
                    .await;
            }
            DisputeState::Resolved => {
                resolve(
                    &parties.operator,
                    &open.id,
                    pb::DisputeResolution::ReleaseToSeller,
                    0,
                )
                .await
                .unwrap();
            }
        }
        let listed = DISPUTE_TRANSITIONS
            .iter()
            .any(|(from, a, _)| *from == state && *a == DisputeAction::Resolve);
        let outcome = resolve(
            &parties.operator,
            &open.id,
            pb::DisputeResolution::RefundBuyer,
            0,
        )
        .await;
        if listed {
            let resolved = outcome.unwrap();
            assert_eq!(resolved.state, pb::DisputeState::Resolved as i32, "{state}");
            assert_eq!(
                get_order(&parties.buyer, &disputed.id).await.state,
                pb::OrderState::Refunded as i32
            );
        } else {
            assert_status(outcome, ErrorCode::FailedPrecondition);
        }
    }
    app.stop().await;
}

/// A listing of `seller` driven through the API into `state`.
async fn listing_in(app: &TestApp, seller: &User, state: ListingState) -> pb::Listing {
    let draft = app.draft(seller, "Tiles", 300, "EUR", 100).await;
    let archive = pb::ArchiveListingRequest {
        tenant_id: seller.tenant_id(),
        listing_id: draft.id.clone(),
    };
    match state {
        ListingState::Draft => draft,
        ListingState::Published => publish(seller, &draft.id).await,
        ListingState::Archived => {
            publish(seller, &draft.id).await;
            seller
                .client
                .clone()
                .archive_listing(archive)
                .await
                .unwrap()
                .into_inner()
        }
    }
}

#[tokio::test]
async fn every_listing_move_outside_the_table_is_a_failed_precondition() {
    let app = TestApp::spawn().await;
    let seller = app.user(TenantId::new());
    let actions = [
        ListingAction::Publish,
        ListingAction::Archive,
        ListingAction::Edit,
        ListingAction::ChangeCurrency,
    ];
    for state in ListingState::ALL {
        for action in actions {
            let listing = listing_in(&app, &seller, state).await;
            let (tenant_id, listing_id) = (seller.tenant_id(), listing.id.clone());
            let update = |path: &str, value: pb::Listing| pb::UpdateListingRequest {
                tenant_id: tenant_id.clone(),
                listing_id: listing_id.clone(),
                listing: Some(value),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec![path.into()],
                }),
            };
            let mut client = seller.client.clone();
            let outcome = match action {
                ListingAction::Publish => {
                    client
                        .publish_listing(pb::PublishListingRequest {
                            tenant_id: tenant_id.clone(),
                            listing_id: listing_id.clone(),
                        })
                        .await
                }
                ListingAction::Archive => {
                    client
                        .archive_listing(pb::ArchiveListingRequest {
                            tenant_id: tenant_id.clone(),
                            listing_id: listing_id.clone(),
                        })
                        .await
                }
                ListingAction::Edit => {
                    let title = pb::Listing {
                        title: "Blue tiles".into(),
                        ..Default::default()
                    };
                    client.update_listing(update("title", title)).await
                }
                ListingAction::ChangeCurrency => {
                    let currency = pb::Listing {
                        currency: "JPY".into(),
                        ..Default::default()
                    };
                    client.update_listing(update("currency", currency)).await
                }
            };
            match LISTING_TRANSITIONS
                .iter()
                .find(|(from, a, _)| *from == state && *a == action)
            {
                Some((_, _, to)) => {
                    let changed = outcome
                        .unwrap_or_else(|s| panic!("{state} {action}: {s:?}"))
                        .into_inner();
                    assert_eq!(changed.state, pb::ListingState::from(*to) as i32);
                }
                None => {
                    assert_status(outcome, ErrorCode::FailedPrecondition);
                }
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn every_offer_answer_outside_the_table_is_a_failed_precondition() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 1_000).await;
    let actions = [
        OfferAction::Accept,
        OfferAction::Reject,
        OfferAction::Counter,
    ];
    for state in OfferState::ALL {
        for action in actions {
            // Each offer lives an hour, so the clock can expire it without touching the others.
            let expire = keel_kernel::grpc::timestamp(app.now() + chrono::Duration::hours(1));
            let offer = buyer
                .client
                .clone()
                .create_offer(pb::CreateOfferRequest {
                    tenant_id: buyer.tenant_id(),
                    listing_id: listing.id.clone(),
                    offer: Some(pb::Offer {
                        unit_price: 900,
                        quantity: 1,
                        expire_time: Some(expire),
                        ..Default::default()
                    }),
                })
                .await
                .unwrap()
                .into_inner();
            let (tenant_id, listing_id, offer_id) =
                (seller.tenant_id(), listing.id.clone(), offer.id.clone());
            let accept = pb::AcceptOfferRequest {
                tenant_id: tenant_id.clone(),
                listing_id: listing_id.clone(),
                offer_id: offer_id.clone(),
            };
            let reject = pb::RejectOfferRequest {
                tenant_id: tenant_id.clone(),
                listing_id: listing_id.clone(),
                offer_id: offer_id.clone(),
            };
            let counter = pb::CounterOfferRequest {
                tenant_id,
                listing_id,
                offer_id,
                unit_price: 950,
                ..Default::default()
            };
            let mut client = seller.client.clone();
            match state {
                OfferState::Pending => {}
                OfferState::Accepted => {
                    client.accept_offer(accept.clone()).await.unwrap();
                }
                OfferState::Rejected => {
                    client.reject_offer(reject.clone()).await.unwrap();
                }
                OfferState::Expired => app.advance(chrono::Duration::minutes(61)).await,
            }
            let outcome = match action {
                OfferAction::Accept => client.accept_offer(accept).await,
                OfferAction::Reject => client.reject_offer(reject).await,
                _ => client.counter_offer(counter).await,
            };
            let listed = OFFER_TRANSITIONS
                .iter()
                .any(|(from, a, _)| *from == state && *a == action);
            if listed {
                outcome.unwrap_or_else(|s| panic!("{state} {action}: {s:?}"));
            } else {
                assert_status(outcome, ErrorCode::FailedPrecondition);
            }
        }
    }
    app.stop().await;
}
