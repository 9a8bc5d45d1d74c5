//! Subscriptions: one live per tenant, idempotent creation, changes, cancellation, entitlements.

use futures::future::join_all;
use keel_kernel::auth::roles;
use keel_kernel::grpc::from_timestamp;
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::billing::v1 as pb;
use keel_testkit::{assert_status, payload, violated_fields};

use crate::support::{TestApp, at, start_time};

fn create(tenant: TenantId, price_id: &str, request_id: &str) -> pb::CreateSubscriptionRequest {
    pb::CreateSubscriptionRequest {
        tenant_id: tenant.to_string(),
        subscription: Some(pb::Subscription {
            price_id: price_id.into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test]
async fn an_owner_subscribes_the_tenant_for_one_calendar_month_and_events_follow() {
    let app = TestApp::spawn().await;
    let (tenant, subscription) = app.subscribed_tenant("pro").await;
    assert_eq!(subscription.plan_id, "pro");
    assert_eq!(subscription.state, pb::SubscriptionState::Active as i32);
    let start = from_timestamp(
        "s",
        subscription.current_period_start_time.as_ref().unwrap(),
    )
    .unwrap();
    let end = from_timestamp("e", subscription.current_period_end_time.as_ref().unwrap()).unwrap();
    assert_eq!((start, end), (start_time(), at("2027-04-15T09:00:00Z")));

    let events = app.events().await;
    let created = events.of_type("billing.subscription.created", 1).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].tenant_id, tenant.to_string());
    let entitlements = events.of_type("billing.entitlements.changed", 1).await;
    let changed: pb::EntitlementsChanged = payload(&entitlements[0]);
    assert_eq!(changed.plan_id, "pro");
    assert_eq!(changed.version, 1);
    assert_eq!(changed.limits.get("seats"), Some(&25));
    assert!(changed.modules.contains(&"marketplace".to_owned()));

    let got = app
        .owner(tenant)
        .get_subscription(pb::GetSubscriptionRequest {
            tenant_id: tenant.to_string(),
            subscription_id: subscription.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, subscription);
}

#[tokio::test]
async fn a_second_live_subscription_is_a_failed_precondition() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.subscribed_tenant("free").await;
    let price = app.flat_price("pro").await;
    assert_status(
        app.owner(tenant)
            .create_subscription(create(tenant, &price, ""))
            .await,
        ErrorCode::FailedPrecondition,
    );
}

#[tokio::test]
async fn concurrent_creates_without_a_request_id_give_one_live_subscription() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let price = app.flat_price("pro").await;
    let results = join_all((0..10).map(|_| {
        let mut client = app.owner(tenant);
        let request = create(tenant, &price, "");
        async move { client.create_subscription(request).await }
    }))
    .await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 1, "{results:?}");
    for refused in results.into_iter().filter(|r| r.is_err()) {
        assert_status(refused, ErrorCode::FailedPrecondition);
    }
    assert_eq!(app.subscriptions(tenant).await.len(), 1);
}

#[tokio::test]
async fn concurrent_creates_with_one_request_id_give_one_subscription_and_the_same_answer() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let price = app.flat_price("pro").await;
    let results = join_all((0..10).map(|_| {
        let mut client = app.owner(tenant);
        let request = create(tenant, &price, "create-sub-1");
        async move { client.create_subscription(request).await }
    }))
    .await;
    let answers: Vec<pb::Subscription> = results
        .into_iter()
        .map(|r| r.expect("every retry answered").into_inner())
        .collect();
    assert!(answers.iter().all(|a| a == &answers[0]), "one answer");
    assert_eq!(app.subscriptions(tenant).await.len(), 1);
    let created = app
        .events()
        .await
        .of_type("billing.subscription.created", 1)
        .await;
    assert_eq!(created.len(), 1);
}

#[tokio::test]
async fn a_request_id_reused_with_another_body_is_refused() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let pro = app.flat_price("pro").await;
    let free = app.flat_price("free").await;
    app.owner(tenant)
        .create_subscription(create(tenant, &pro, "key-1"))
        .await
        .unwrap();
    let status = assert_status(
        app.owner(tenant)
            .create_subscription(create(tenant, &free, "key-1"))
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), vec!["request_id"]);
}

#[tokio::test]
async fn a_usage_price_or_an_unknown_price_cannot_be_subscribed_to() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let plan = app
        .owner(tenant)
        .get_plan(pb::GetPlanRequest {
            plan_id: "pro".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let usage = plan.prices.iter().find(|p| !p.meter_id.is_empty()).unwrap();
    for price in [
        usage.id.clone(),
        uuid::Uuid::now_v7().to_string(),
        "nope".into(),
    ] {
        let status = assert_status(
            app.owner(tenant)
                .create_subscription(create(tenant, &price, ""))
                .await,
            ErrorCode::Validation,
        );
        assert_eq!(violated_fields(&status), vec!["subscription.price_id"]);
    }
}

#[tokio::test]
async fn admins_read_but_only_owners_change_subscriptions() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let price = app.flat_price("pro").await;
    let admin = app.billing(&app.token(tenant, roles::ADMIN));
    assert_status(
        admin
            .clone()
            .create_subscription(create(tenant, &price, ""))
            .await,
        ErrorCode::Authz,
    );
    let subscription = app.subscribe(tenant, "pro").await;
    let listed = admin
        .clone()
        .list_subscriptions(pb::ListSubscriptionsRequest {
            tenant_id: tenant.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.subscriptions, vec![subscription.clone()]);
    assert_status(
        admin
            .clone()
            .cancel_subscription(pb::CancelSubscriptionRequest {
                tenant_id: tenant.to_string(),
                subscription_id: subscription.id.clone(),
                immediately: true,
            })
            .await,
        ErrorCode::Authz,
    );
    let member = app.billing(&app.token(tenant, roles::MEMBER));
    assert_status(
        member
            .clone()
            .get_subscription(pb::GetSubscriptionRequest {
                tenant_id: tenant.to_string(),
                subscription_id: subscription.id,
            })
            .await,
        ErrorCode::Authz,
    );
}

#[tokio::test]
async fn subscriptions_are_listed_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let subscription = app.subscribe(tenant, "free").await;
        ids.push(subscription.id.clone());
        app.owner(tenant)
            .cancel_subscription(pb::CancelSubscriptionRequest {
                tenant_id: tenant.to_string(),
                subscription_id: subscription.id,
                immediately: true,
            })
            .await
            .unwrap();
        app.clock.advance(chrono::Duration::seconds(1));
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .owner(tenant)
            .list_subscriptions(pb::ListSubscriptionsRequest {
                tenant_id: tenant.to_string(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.subscriptions.into_iter().map(|s| s.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn an_update_mask_naming_another_field_is_refused_naming_the_mask() {
    let app = TestApp::spawn().await;
    let (tenant, subscription) = app.subscribed_tenant("free").await;
    for paths in [vec!["state"], vec![]] {
        let status = assert_status(
            app.owner(tenant)
                .update_subscription(pb::UpdateSubscriptionRequest {
                    tenant_id: tenant.to_string(),
                    subscription_id: subscription.id.clone(),
                    subscription: Some(pb::Subscription::default()),
                    update_mask: mask(&paths),
                })
                .await,
            ErrorCode::Validation,
        );
        assert_eq!(violated_fields(&status), vec!["update_mask"]);
    }
}

#[tokio::test]
async fn changing_the_price_moves_the_plan_and_publishes_new_entitlements() {
    let app = TestApp::spawn().await;
    let (tenant, subscription) = app.subscribed_tenant("free").await;
    let pro = app.flat_price("pro").await;
    let updated = app
        .owner(tenant)
        .update_subscription(pb::UpdateSubscriptionRequest {
            tenant_id: tenant.to_string(),
            subscription_id: subscription.id.clone(),
            subscription: Some(pb::Subscription {
                price_id: pro.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["price_id"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (updated.plan_id.as_str(), updated.price_id.as_str()),
        ("pro", pro.as_str())
    );
    let events = app.events().await;
    let changed = events.of_type("billing.subscription.changed", 1).await;
    let changed: pb::SubscriptionChanged = payload(&changed[0]);
    assert_eq!(changed.previous_price_id, subscription.price_id);
    let entitlements = events.of_type("billing.entitlements.changed", 2).await;
    let last: pb::EntitlementsChanged = payload(&entitlements[1]);
    assert_eq!((last.plan_id.as_str(), last.version), ("pro", 2));
    let got = app
        .owner(tenant)
        .get_billing_entitlements(pb::GetBillingEntitlementsRequest {
            tenant_id: tenant.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.plan_id, "pro");
}

#[tokio::test]
async fn cancel_at_period_end_keeps_the_subscription_until_its_period_closes() {
    let app = TestApp::spawn().await;
    let (tenant, subscription) = app.subscribed_tenant("pro").await;
    let canceling = app
        .owner(tenant)
        .cancel_subscription(pb::CancelSubscriptionRequest {
            tenant_id: tenant.to_string(),
            subscription_id: subscription.id.clone(),
            immediately: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(canceling.cancel_at_period_end);
    assert_eq!(canceling.state, pb::SubscriptionState::Active as i32);
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    let after = app.subscriptions(tenant).await;
    assert_eq!(after[0].state, pb::SubscriptionState::Canceled as i32);
    assert_eq!(
        app.invoices(tenant).await.len(),
        1,
        "the last period is invoiced"
    );
    let canceled = app
        .events()
        .await
        .of_type("billing.subscription.canceled", 1)
        .await;
    let canceled: pb::SubscriptionCanceled = payload(&canceled[0]);
    assert_eq!(canceled.reason, "period_end");
}

#[tokio::test]
async fn a_canceled_subscription_refuses_changes_and_a_new_one_can_start() {
    let app = TestApp::spawn().await;
    let (tenant, subscription) = app.subscribed_tenant("free").await;
    let cancel = pb::CancelSubscriptionRequest {
        tenant_id: tenant.to_string(),
        subscription_id: subscription.id.clone(),
        immediately: true,
    };
    let canceled = app
        .owner(tenant)
        .cancel_subscription(cancel.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(canceled.state, pb::SubscriptionState::Canceled as i32);
    assert_status(
        app.owner(tenant).cancel_subscription(cancel).await,
        ErrorCode::FailedPrecondition,
    );
    assert_status(
        app.owner(tenant)
            .update_subscription(pb::UpdateSubscriptionRequest {
                tenant_id: tenant.to_string(),
                subscription_id: subscription.id,
                subscription: Some(pb::Subscription {
                    cancel_at_period_end: true,
                    ..Default::default()
                }),
                update_mask: mask(&["cancel_at_period_end"]),
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    app.subscribe(tenant, "pro").await;
    let entitlements = app
        .owner(tenant)
        .get_billing_entitlements(pb::GetBillingEntitlementsRequest {
            tenant_id: tenant.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(entitlements.plan_id, "pro");
}

#[tokio::test]
async fn entitlements_show_each_limit_with_this_periods_use() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.subscribed_tenant("free").await;
    let now = start_time();
    app.record_usage(tenant, "ai.tokens", 700, now, "a").await;
    app.record_usage(tenant, "ai.tokens", 300, now, "b").await;
    // Before the period: not this period's use.
    app.record_usage(
        tenant,
        "ai.tokens",
        5_000,
        now - chrono::Duration::days(40),
        "old",
    )
    .await;
    app.record_usage(tenant, "seats", 2, now, "s").await;
    let entitlements = app
        .owner(tenant)
        .get_billing_entitlements(pb::GetBillingEntitlementsRequest {
            tenant_id: tenant.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(entitlements.plan_id, "free");
    assert_eq!(
        entitlements.subscription_state,
        pb::SubscriptionState::Active as i32
    );
    let used = |feature: &str| {
        entitlements
            .entitlements
            .iter()
            .find(|e| e.feature == feature)
            .map(|e| (e.limit, e.used))
    };
    assert_eq!(used("ai.tokens.monthly"), Some((100_000, 1_000)));
    assert_eq!(used("seats"), Some((3, 2)));
    assert_eq!(entitlements.modules, vec!["delivery", "ai"]);

    let viewer = app.billing(&app.token(tenant, roles::VIEWER));
    assert_status(
        viewer
            .clone()
            .get_billing_entitlements(pb::GetBillingEntitlementsRequest {
                tenant_id: tenant.to_string(),
            })
            .await,
        ErrorCode::Authz,
    );
    // A tenant without a subscription is entitled to the default plan.
    let other = TenantId::new();
    let fallback = app
        .platform_admin()
        .get_billing_entitlements(pb::GetBillingEntitlementsRequest {
            tenant_id: other.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fallback.plan_id, "free");
    assert_eq!(
        fallback.subscription_state,
        pb::SubscriptionState::Unspecified as i32
    );
}

#[tokio::test]
async fn clearing_cancel_at_period_end_renews_the_subscription_as_usual() {
    let app = TestApp::spawn().await;
    let (tenant, subscription) = app.subscribed_tenant("pro").await;
    let set = |value: bool| pb::UpdateSubscriptionRequest {
        tenant_id: tenant.to_string(),
        subscription_id: subscription.id.clone(),
        subscription: Some(pb::Subscription {
            cancel_at_period_end: value,
            ..Default::default()
        }),
        update_mask: mask(&["cancel_at_period_end"]),
    };
    let canceling = app
        .owner(tenant)
        .update_subscription(set(true))
        .await
        .unwrap()
        .into_inner();
    assert!(canceling.cancel_at_period_end);
    let resumed = app
        .owner(tenant)
        .update_subscription(set(false))
        .await
        .unwrap()
        .into_inner();
    assert!(!resumed.cancel_at_period_end);
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    let renewed = &app.subscriptions(tenant).await[0];
    assert_eq!(renewed.state, pb::SubscriptionState::Active as i32);
    assert_eq!(
        renewed.current_period_start_time,
        Some(prost_types::Timestamp {
            seconds: at("2027-04-15T09:00:00Z").timestamp(),
            nanos: 0,
        })
    );
}
