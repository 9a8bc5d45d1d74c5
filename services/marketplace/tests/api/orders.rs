//! Orders: idempotency keys, stock that never oversells, commission, the completed-order event.

use futures::future::join_all;
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::marketplace::v1 as pb;
use keel_testkit::{assert_status, payload};

use crate::support::{
    TestApp, cancel, complete, fulfill, get_listing, get_order, order, order_request, try_order,
};

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_returns_the_first_order_and_reserves_once() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 10).await;

    let request = order_request(&buyer, &listing.id, 3, "order-key-1");
    let first = buyer
        .client
        .clone()
        .create_order(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = buyer
        .client
        .clone()
        .create_order(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(
        get_listing(&seller, &listing.id).await.quantity_available,
        7
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
async fn the_same_key_with_another_body_is_a_conflict_naming_the_key() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 10).await;

    try_order(&buyer, &listing.id, 1, "order-key-2")
        .await
        .unwrap();
    let status = assert_status(
        try_order(&buyer, &listing.id, 2, "order-key-2").await,
        ErrorCode::Conflict,
    );
    assert!(status.message().contains("order-key-2"), "{status:?}");
    assert!(status.message().contains("request_id"), "{status:?}");
    assert_eq!(
        get_listing(&seller, &listing.id).await.quantity_available,
        9
    );
    app.stop().await;
}

#[tokio::test]
async fn the_idempotency_key_header_stands_in_for_request_id() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 10).await;

    let with_header = |quantity: i64| {
        let mut request = tonic::Request::new(order_request(&buyer, &listing.id, quantity, ""));
        request
            .metadata_mut()
            .insert("idempotency-key", "header-key-1".parse().unwrap());
        request
    };
    let first = buyer
        .client
        .clone()
        .create_order(with_header(2))
        .await
        .unwrap()
        .into_inner();
    let again = buyer
        .client
        .clone()
        .create_order(with_header(2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.id, again.id);
    let status = assert_status(
        buyer.client.clone().create_order(with_header(4)).await,
        ErrorCode::Conflict,
    );
    assert!(status.message().contains("header-key-1"), "{status:?}");
    assert!(status.message().contains("Idempotency-Key"), "{status:?}");
    assert_eq!(
        get_listing(&seller, &listing.id).await.quantity_available,
        8
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_creates_with_one_key_place_one_order_and_every_caller_gets_it() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 100).await;

    let request = order_request(&buyer, &listing.id, 1, "raced-key");
    let answers = join_all((0..16).map(|_| {
        let mut client = buyer.client.clone();
        let request = request.clone();
        tokio::spawn(async move { client.create_order(request).await })
    }))
    .await;
    let ids: Vec<String> = answers
        .into_iter()
        .map(|answer| {
            answer
                .unwrap()
                .expect("every caller gets the order")
                .into_inner()
                .id
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        get_listing(&seller, &listing.id).await.quantity_available,
        99
    );
    app.stop().await;
}

#[tokio::test]
async fn keys_are_per_buyer_and_per_tenant() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, alice, bob) = (app.user(tenant), app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 10).await;

    let of_alice = try_order(&alice, &listing.id, 1, "shared-key")
        .await
        .unwrap();
    let of_bob = try_order(&bob, &listing.id, 1, "shared-key").await.unwrap();
    assert_ne!(of_alice.id, of_bob.id);
    assert_eq!(of_bob.buyer_id, bob.id.to_string());

    let other = TenantId::new();
    let (other_seller, other_buyer) = (app.user(other), app.user(other));
    let other_listing = app.listing(&other_seller, 1_000, "EUR", 10).await;
    let elsewhere = other_buyer
        .client
        .clone()
        .create_order(order_request(
            &other_buyer,
            &other_listing.id,
            1,
            "shared-key",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(elsewhere.tenant_id, other.to_string());
    assert_eq!(
        get_listing(&seller, &listing.id).await.quantity_available,
        8
    );
    app.stop().await;
}

#[tokio::test]
async fn keys_are_purged_after_the_retention_and_kept_before_it() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_000, "EUR", 10).await;
    let request = order_request(&buyer, &listing.id, 1, "old-key");
    let first = buyer
        .client
        .clone()
        .create_order(request.clone())
        .await
        .unwrap()
        .into_inner();

    // A day later (retention 48 h) the key still answers with the first order.
    app.advance(chrono::Duration::hours(25)).await;
    let replay = buyer
        .client
        .clone()
        .create_order(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.id, first.id);

    // Past the retention the purge job forgot it: the same key is a new request.
    app.advance(chrono::Duration::hours(25)).await;
    let fresh = buyer
        .client
        .clone()
        .create_order(request)
        .await
        .unwrap()
        .into_inner();
    assert_ne!(fresh.id, first.id);
    assert_eq!(
        get_listing(&seller, &listing.id).await.quantity_available,
        8
    );
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_orders_for_ten_units_sell_exactly_ten() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let seller = app.user(tenant);
    let listing = app.listing(&seller, 500, "EUR", 10).await;

    let answers = join_all((0..50).map(|_| {
        let buyer = app.user(tenant);
        let request = order_request(&buyer, &listing.id, 1, "");
        tokio::spawn(async move { buyer.client.clone().create_order(request).await })
    }))
    .await;
    let mut placed = 0;
    for answer in answers {
        match answer.unwrap() {
            Ok(_) => placed += 1,
            Err(status) => {
                assert_status::<()>(Err(status), ErrorCode::FailedPrecondition);
            }
        }
    }
    assert_eq!(placed, 10);
    assert_eq!(
        get_listing(&seller, &listing.id).await.quantity_available,
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn canceling_gives_the_units_back_and_ordering_more_than_is_left_is_refused() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 500, "EUR", 5).await;

    let placed = order(&buyer, &listing.id, 4).await;
    let status = assert_status(
        try_order(&buyer, &listing.id, 2, "").await,
        ErrorCode::FailedPrecondition,
    );
    assert!(status.message().contains("1 available"), "{status:?}");
    let canceled = cancel(&seller, &placed.id).await.unwrap();
    assert_eq!(canceled.state, pb::OrderState::Canceled as i32);
    assert_eq!(canceled.cancel_reason, "changed my mind");
    assert_eq!(
        get_listing(&seller, &listing.id).await.quantity_available,
        5
    );
    app.stop().await;
}

#[tokio::test]
async fn sellers_cannot_buy_their_own_listing_and_archived_listings_and_drafts_are_not_for_sale() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 500, "EUR", 5).await;
    assert_status(
        try_order(&seller, &listing.id, 1, "").await,
        ErrorCode::FailedPrecondition,
    );
    // An archived listing is still visible, but sells nothing.
    seller
        .client
        .clone()
        .archive_listing(pb::ArchiveListingRequest {
            tenant_id: seller.tenant_id(),
            listing_id: listing.id.clone(),
        })
        .await
        .unwrap();
    assert_status(
        try_order(&buyer, &listing.id, 1, "").await,
        ErrorCode::FailedPrecondition,
    );
    let draft = app.draft(&seller, "Draft bricks", 500, "EUR", 5).await;
    // A draft is invisible to others.
    assert_status(
        try_order(&buyer, &draft.id, 1, "").await,
        ErrorCode::NotFound,
    );
    app.stop().await;
}

#[tokio::test]
async fn commission_is_rounded_half_up_to_the_minor_unit_of_kwd_and_jpy() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    // 2.5 % + 0.100 KWD / 30 JPY (test settings).
    let cases = [
        // 1.234 KWD: 30.85 fils -> 31, + 100 fils.
        ("KWD", 1_234, 1, 131),
        // 2.020 KWD: 50.5 fils -> 51 (half goes up), + 100.
        ("KWD", 1_010, 2, 151),
        // 1,020 JPY: 25.5 yen -> 26, + 30.
        ("JPY", 1_020, 1, 56),
        // 1,019 JPY: 25.475 yen -> 25, + 30.
        ("JPY", 1_019, 1, 55),
        // 20 JPY: 0.5 -> 1, + 30 = 31, more than the total: capped at 20.
        ("JPY", 20, 1, 20),
    ];
    for (currency, unit_price, quantity, commission) in cases {
        let listing = app.listing(&seller, unit_price, currency, 10).await;
        let placed = order(&buyer, &listing.id, quantity).await;
        assert_eq!(placed.currency, currency);
        assert_eq!(placed.total_amount, unit_price * quantity);
        assert_eq!(
            placed.commission_amount, commission,
            "{currency} {unit_price} x {quantity}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_completed_order_publishes_order_completed_for_billing() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 1_234, "KWD", 10).await;
    let placed = order(&buyer, &listing.id, 2).await;
    fulfill(&seller, &placed.id).await.unwrap();
    let completed = complete(&buyer, &placed.id).await.unwrap();
    assert_eq!(completed.state, pb::OrderState::Completed as i32);

    let log = app.events().await;
    let events = log.of_type("marketplace.order.completed", 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tenant_id, tenant.to_string());
    let event: pb::OrderCompleted = payload(&events[0]);
    assert_eq!(event.order_id, placed.id);
    assert_eq!(event.buyer_id, buyer.id.to_string());
    assert_eq!(event.seller_id, seller.id.to_string());
    assert_eq!(event.total_amount, 2_468);
    assert_eq!(event.currency, "KWD");
    assert_eq!(log.of_type("marketplace.order.placed", 1).await.len(), 1);
    assert_eq!(
        get_order(&buyer, &placed.id).await.state,
        pb::OrderState::Completed as i32
    );
    app.stop().await;
}

#[tokio::test]
async fn the_tenants_plan_from_billing_picks_the_commission_rule() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, buyer) = (app.user(tenant), app.user(tenant));
    let listing = app.listing(&seller, 10_050, "EUR", 100_000).await;
    // The default plan (free): 2.5 % of 100.50 EUR = 251.25 cents -> 251, + 30.
    assert_eq!(order(&buyer, &listing.id, 1).await.commission_amount, 281);

    let log = app.events().await;
    let entitlements = |plan: &str, version: i64| keel_proto::billing::v1::EntitlementsChanged {
        tenant_id: tenant.to_string(),
        plan_id: plan.into(),
        version,
        ..Default::default()
    };
    log.publish(
        "billing",
        "billing.entitlements.changed",
        &tenant.to_string(),
        2,
        &entitlements("pro", 2),
    )
    .await;
    // A stale announcement (an older version) changes nothing.
    log.publish(
        "billing",
        "billing.entitlements.changed",
        &tenant.to_string(),
        1,
        &entitlements("free", 1),
    )
    .await;
    // On pro: 1 % of 100.50 EUR = 100.5 cents -> 101 (half up), no fixed part.
    keel_testkit::eventually(|| async {
        let placed = order(&buyer, &listing.id, 1).await;
        (placed.commission_amount == 101).then_some(())
    })
    .await;
    app.stop().await;
}
