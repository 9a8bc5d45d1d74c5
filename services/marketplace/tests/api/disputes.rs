//! Disputes: who may open and settle them, the window, partial refunds, escalation.

use keel_kernel::{ErrorCode, TenantId};
use keel_proto::marketplace::v1 as pb;
use keel_testkit::{assert_status, payload, violated_fields};

use crate::support::{
    TestApp, cancel, complete, dispute, fulfill, get_listing, get_order, order, resolve,
};

#[tokio::test]
async fn only_the_buyer_confirms_receipt() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer, stranger) = (app.user(tenant), app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 700, "EUR", 10).await;
    let placed = order(&buyer, &listing.id, 1).await;
    // Only the seller fulfils.
    assert_status(fulfill(&buyer, &placed.id).await, ErrorCode::Authz);
    fulfill(&seller, &placed.id).await.unwrap();
    assert_status(complete(&seller, &placed.id).await, ErrorCode::Authz);
    // Someone else's order does not exist for them.
    assert_status(complete(&stranger, &placed.id).await, ErrorCode::NotFound);
    complete(&buyer, &placed.id).await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_dispute_is_opened_on_a_fulfilled_order_only_within_the_window() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 700, "EUR", 10).await;

    let placed = order(&buyer, &listing.id, 1).await;
    assert_status(
        dispute(&buyer, &placed.id).await,
        ErrorCode::FailedPrecondition,
    );
    fulfill(&seller, &placed.id).await.unwrap();
    let status = assert_status(
        buyer
            .client
            .clone()
            .create_dispute(pb::CreateDisputeRequest {
                tenant_id: buyer.tenant_id(),
                dispute: Some(pb::Dispute {
                    order_id: placed.id.clone(),
                    reason: "  ".into(),
                    ..Default::default()
                }),
            })
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), ["dispute.reason"]);

    let late = order(&buyer, &listing.id, 1).await;
    fulfill(&seller, &late.id).await.unwrap();
    app.advance(app.settings.dispute_window() + chrono::Duration::seconds(1))
        .await;
    let status = assert_status(
        dispute(&seller, &late.id).await,
        ErrorCode::FailedPrecondition,
    );
    assert!(status.message().contains("window"), "{status:?}");

    // Within the window the seller may open one too, once.
    let fresh = order(&buyer, &listing.id, 1).await;
    fulfill(&seller, &fresh.id).await.unwrap();
    let opened = dispute(&seller, &fresh.id).await.unwrap();
    assert_eq!(opened.state, pb::DisputeState::Open as i32);
    assert_eq!(opened.opened_by, seller.id.to_string());
    assert_status(
        dispute(&buyer, &fresh.id).await,
        ErrorCode::FailedPrecondition,
    );
    app.stop().await;
}

#[tokio::test]
async fn a_disputed_order_is_frozen_and_only_a_resolver_settles_it() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer, operator) = (app.user(tenant), app.user(tenant), app.operator(tenant));
    let listing = app.listing(&seller, 700, "EUR", 10).await;
    let placed = order(&buyer, &listing.id, 2).await;
    fulfill(&seller, &placed.id).await.unwrap();
    let opened = dispute(&buyer, &placed.id).await.unwrap();

    assert_status(
        complete(&buyer, &placed.id).await,
        ErrorCode::FailedPrecondition,
    );
    assert_status(
        cancel(&seller, &placed.id).await,
        ErrorCode::FailedPrecondition,
    );
    // Parties hold no `marketplace.dispute.resolve`.
    for party in [&buyer, &seller] {
        assert_status(
            resolve(party, &opened.id, pb::DisputeResolution::RefundBuyer, 0).await,
            ErrorCode::Authz,
        );
    }
    let released = resolve(
        &operator,
        &opened.id,
        pb::DisputeResolution::ReleaseToSeller,
        0,
    )
    .await
    .unwrap();
    assert_eq!(
        released.resolution,
        pb::DisputeResolution::ReleaseToSeller as i32
    );
    assert_eq!(released.resolved_by, operator.id.to_string());
    assert_eq!(
        get_order(&buyer, &placed.id).await.state,
        pb::OrderState::Completed as i32
    );
    // Released to the seller, the order is complete: billing hears of it.
    let log = app.events().await;
    let completed = log.of_type("marketplace.order.completed", 1).await;
    assert_eq!(
        payload::<pb::OrderCompleted>(&completed[0]).order_id,
        placed.id
    );
    app.stop().await;
}

#[tokio::test]
async fn a_partial_refund_never_exceeds_the_total_and_gives_the_units_back() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer, operator) = (app.user(tenant), app.user(tenant), app.operator(tenant));
    let listing = app.listing(&seller, 1_500, "KWD", 10).await;
    let placed = order(&buyer, &listing.id, 2).await;
    fulfill(&seller, &placed.id).await.unwrap();
    let opened = dispute(&buyer, &placed.id).await.unwrap();

    let status = assert_status(
        resolve(
            &operator,
            &opened.id,
            pb::DisputeResolution::RefundBuyer,
            3_001,
        )
        .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), ["refund_amount"]);
    let settled = resolve(
        &operator,
        &opened.id,
        pb::DisputeResolution::RefundBuyer,
        1_250,
    )
    .await
    .unwrap();
    assert_eq!(settled.refund_amount, 1_250);
    let refunded = get_order(&buyer, &placed.id).await;
    assert_eq!(refunded.state, pb::OrderState::Refunded as i32);
    assert_eq!(refunded.refunded_amount, 1_250);
    assert_eq!(
        get_listing(&seller, &listing.id).await.quantity_available,
        10
    );

    let log = app.events().await;
    let events = log.of_type("marketplace.order.refunded", 1).await;
    assert_eq!(
        payload::<pb::OrderRefunded>(&events[0]).refund_amount,
        1_250
    );
    app.stop().await;
}

#[tokio::test]
async fn an_open_dispute_left_alone_is_escalated_by_an_event() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer, operator) = (app.user(tenant), app.user(tenant), app.operator(tenant));
    let listing = app.listing(&seller, 700, "EUR", 10).await;
    let placed = order(&buyer, &listing.id, 1).await;
    fulfill(&seller, &placed.id).await.unwrap();
    let opened = dispute(&buyer, &placed.id).await.unwrap();

    let get = || {
        let mut client = operator.client.clone();
        let request = pb::GetDisputeRequest {
            tenant_id: operator.tenant_id(),
            dispute_id: opened.id.clone(),
        };
        async move { client.get_dispute(request).await.unwrap().into_inner() }
    };
    app.advance(app.settings.dispute_escalation() - chrono::Duration::minutes(1))
        .await;
    assert_eq!(get().await.state, pb::DisputeState::Open as i32);
    app.advance(chrono::Duration::minutes(2)).await;
    let escalated = get().await;
    assert_eq!(escalated.state, pb::DisputeState::Escalated as i32);
    assert!(escalated.escalate_time.is_some());

    let log = app.events().await;
    let events = log.of_type("marketplace.dispute.escalated", 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        payload::<pb::DisputeEscalated>(&events[0]).dispute_id,
        opened.id
    );

    // Escalated, it still settles.
    resolve(&operator, &opened.id, pb::DisputeResolution::RefundBuyer, 0)
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn disputes_are_seen_by_their_parties_and_resolvers_only() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer, stranger, operator) = (
        app.user(tenant),
        app.user(tenant),
        app.user(tenant),
        app.operator(tenant),
    );
    let listing = app.listing(&seller, 700, "EUR", 10).await;
    let placed = order(&buyer, &listing.id, 1).await;
    fulfill(&seller, &placed.id).await.unwrap();
    let opened = dispute(&buyer, &placed.id).await.unwrap();
    // Nobody else may open one on the order either.
    assert_status(dispute(&stranger, &placed.id).await, ErrorCode::NotFound);

    let count = |user: &crate::support::User| {
        let mut client = user.client.clone();
        let tenant_id = user.tenant_id();
        async move {
            client
                .list_disputes(pb::ListDisputesRequest {
                    tenant_id,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .disputes
                .len()
        }
    };
    assert_eq!(
        (
            count(&buyer).await,
            count(&seller).await,
            count(&stranger).await,
            count(&operator).await
        ),
        (1, 1, 0, 1)
    );
    assert_status(
        stranger
            .client
            .clone()
            .get_dispute(pb::GetDisputeRequest {
                tenant_id: stranger.tenant_id(),
                dispute_id: opened.id.clone(),
            })
            .await,
        ErrorCode::NotFound,
    );
    app.stop().await;
}
