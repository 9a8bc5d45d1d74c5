//! Listings: sellers manage their own; search by state, seller, price range and words (CJK by
//! n-grams); cursor paging; the currency fixed once published.

use keel_kernel::{ErrorCode, TenantId};
use keel_proto::marketplace::v1 as pb;
use keel_testkit::{assert_status, violated_fields};

use crate::support::{TestApp, User, publish};

async fn search(user: &User, request: pb::ListListingsRequest) -> Vec<pb::Listing> {
    user.client
        .clone()
        .list_listings(pb::ListListingsRequest {
            tenant_id: user.tenant_id(),
            ..request
        })
        .await
        .unwrap()
        .into_inner()
        .listings
}

fn titles(listings: &[pb::Listing]) -> Vec<&str> {
    let mut titles: Vec<&str> = listings.iter().map(|l| l.title.as_str()).collect();
    titles.sort();
    titles
}

#[tokio::test]
async fn invalid_listings_are_refused_naming_every_field() {
    let app = TestApp::spawn().await;
    let seller = app.user(TenantId::new());
    let status = assert_status(
        seller
            .client
            .clone()
            .create_listing(pb::CreateListingRequest {
                tenant_id: seller.tenant_id(),
                listing: Some(pb::Listing {
                    title: " ".into(),
                    unit_price: -1,
                    currency: "eur".into(),
                    quantity_available: -2,
                    ..Default::default()
                }),
            })
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "listing.title",
            "listing.unit_price",
            "listing.currency",
            "listing.quantity_available"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn sellers_manage_only_their_own_listings_and_drafts_stay_private() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, other) = (app.user(tenant), app.user(tenant));
    let draft = app.draft(&seller, "Cement", 900, "EUR", 3).await;
    assert_eq!(draft.state, pb::ListingState::Draft as i32);
    assert_status(
        other
            .client
            .clone()
            .get_listing(pb::GetListingRequest {
                tenant_id: other.tenant_id(),
                listing_id: draft.id.clone(),
            })
            .await,
        ErrorCode::NotFound,
    );
    let published = publish(&seller, &draft.id).await;
    for attempt in [
        other
            .client
            .clone()
            .archive_listing(pb::ArchiveListingRequest {
                tenant_id: other.tenant_id(),
                listing_id: published.id.clone(),
            })
            .await,
        other
            .client
            .clone()
            .update_listing(pb::UpdateListingRequest {
                tenant_id: other.tenant_id(),
                listing_id: published.id.clone(),
                listing: Some(pb::Listing {
                    unit_price: 1,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["unit_price".into()],
                }),
            })
            .await,
    ] {
        assert_status(attempt, ErrorCode::Authz);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_listings_currency_is_fixed_once_published_and_archived_listings_are_final() {
    let app = TestApp::spawn().await;
    let seller = app.user(TenantId::new());
    let draft = app.draft(&seller, "Steel", 900, "EUR", 3).await;
    let update = |currency: &str, price: i64| pb::UpdateListingRequest {
        tenant_id: seller.tenant_id(),
        listing_id: draft.id.clone(),
        listing: Some(pb::Listing {
            currency: currency.into(),
            unit_price: price,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["currency".into(), "unit_price".into()],
        }),
    };
    let in_kwd = seller
        .client
        .clone()
        .update_listing(update("KWD", 1_250))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (in_kwd.currency.as_str(), in_kwd.unit_price),
        ("KWD", 1_250)
    );
    publish(&seller, &draft.id).await;
    assert_status(
        seller
            .client
            .clone()
            .update_listing(update("EUR", 1_000))
            .await,
        ErrorCode::FailedPrecondition,
    );
    // The same currency with a new price is fine.
    let repriced = seller
        .client
        .clone()
        .update_listing(update("KWD", 1_300))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(repriced.unit_price, 1_300);
    assert_status(
        seller
            .client
            .clone()
            .publish_listing(pb::PublishListingRequest {
                tenant_id: seller.tenant_id(),
                listing_id: draft.id.clone(),
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    let archive = || pb::ArchiveListingRequest {
        tenant_id: seller.tenant_id(),
        listing_id: draft.id.clone(),
    };
    seller
        .client
        .clone()
        .archive_listing(archive())
        .await
        .unwrap();
    assert_status(
        seller.client.clone().archive_listing(archive()).await,
        ErrorCode::FailedPrecondition,
    );
    assert_status(
        seller.client.clone().update_listing(update("KWD", 1)).await,
        ErrorCode::FailedPrecondition,
    );
    app.stop().await;
}

#[tokio::test]
async fn listings_are_found_by_state_seller_price_and_words_in_any_script() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (alice, bob, viewer) = (app.user(tenant), app.user(tenant), app.user(tenant));
    for (seller, title, price) in [
        (&alice, "北京烤鸭 礼盒", 5_000),
        (&alice, "한국어 교재 세트", 2_000),
        (&bob, "زيت زيتون بكر", 1_500),
        (&bob, "Red clay bricks", 800),
    ] {
        let draft = app.draft(seller, title, price, "EUR", 5).await;
        publish(seller, &draft.id).await;
    }
    app.draft(&alice, "Unpublished bricks", 100, "EUR", 5).await;

    let words = |query: &str| pb::ListListingsRequest {
        query: query.into(),
        ..Default::default()
    };
    assert_eq!(
        titles(&search(&viewer, words("烤鸭")).await),
        ["北京烤鸭 礼盒"]
    );
    assert_eq!(
        titles(&search(&viewer, words("鸭")).await),
        ["北京烤鸭 礼盒"]
    );
    assert_eq!(
        titles(&search(&viewer, words("교재")).await),
        ["한국어 교재 세트"]
    );
    assert_eq!(
        titles(&search(&viewer, words("زيتون")).await),
        ["زيت زيتون بكر"]
    );
    assert_eq!(
        titles(&search(&viewer, words("bricks")).await),
        ["Red clay bricks"]
    );
    // Every word must match.
    assert!(search(&viewer, words("bricks 烤鸭")).await.is_empty());
    // The seller sees their own draft too; nobody else does.
    assert_eq!(search(&alice, words("bricks")).await.len(), 2);

    let priced = search(
        &viewer,
        pb::ListListingsRequest {
            min_unit_price: Some(1_000),
            max_unit_price: Some(2_000),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(titles(&priced), ["زيت زيتون بكر", "한국어 교재 세트"]);
    let of_bob = search(
        &viewer,
        pb::ListListingsRequest {
            seller_id: bob.id.to_string(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(of_bob.len(), 2);
    let drafts = search(
        &alice,
        pb::ListListingsRequest {
            state: pb::ListingState::Draft as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(titles(&drafts), ["Unpublished bricks"]);
    app.stop().await;
}

#[tokio::test]
async fn listing_pages_follow_the_cursor_to_the_end_without_repeats() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let (seller, viewer) = (app.user(tenant), app.user(tenant));
    for _ in 0..7 {
        app.listing(&seller, 100, "EUR", 1).await;
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = viewer
            .client
            .clone()
            .list_listings(pb::ListListingsRequest {
                tenant_id: viewer.tenant_id(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.listings.len() <= 3);
        seen.extend(page.listings.into_iter().map(|l| l.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (7, 7));
    app.stop().await;
}
