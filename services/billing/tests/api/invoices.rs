//! Period close: invoices, numbers, periods, late usage, races; voiding; proration.

use std::collections::BTreeSet;

use futures::future::join_all;
use keel_kernel::auth::roles;
use keel_kernel::grpc::timestamp;
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::billing::v1 as pb;
use keel_testkit::assert_status;

use crate::support::{TestApp, at, start_time};

fn period_of(invoice: &pb::Invoice) -> (prost_types::Timestamp, prost_types::Timestamp) {
    (
        invoice.period_start_time.expect("a period start"),
        invoice.period_end_time.expect("a period end"),
    )
}

#[tokio::test]
async fn the_free_plan_closes_into_a_zero_invoice_paid_at_once_and_renews() {
    let app = TestApp::spawn().await;
    let (tenant, subscription) = app.subscribed_tenant("free").await;
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    let invoices = app.invoices(tenant).await;
    assert_eq!(invoices.len(), 1);
    let invoice = &invoices[0];
    assert_eq!(invoice.state, pb::InvoiceState::Paid as i32);
    assert_eq!((invoice.total, invoice.currency.as_str()), (0, "EUR"));
    assert_eq!(invoice.number, "KEEL-2027-000001");
    assert_eq!(invoice.subscription_id, subscription.id);
    let renewed = &app.subscriptions(tenant).await[0];
    assert_eq!(
        renewed.current_period_start_time,
        Some(timestamp(at("2027-04-15T09:00:00Z")))
    );
    assert_eq!(
        renewed.current_period_end_time,
        Some(timestamp(at("2027-05-15T09:00:00Z")))
    );
    let log = app.events().await;
    assert_eq!(log.of_type("billing.invoice.finalized", 1).await.len(), 1);
    assert_eq!(log.of_type("billing.invoice.paid", 1).await.len(), 1);
    // Nothing is due until the next period ends.
    assert_eq!(app.run_jobs().await, 0);
}

#[tokio::test]
async fn periods_anchored_on_jan_31_close_on_feb_29_mar_31_and_apr_30() {
    let app = TestApp::spawn().await;
    app.clock.set(at("2028-01-31T23:30:00Z"));
    let (tenant, _) = app.subscribed_tenant("pro").await;
    for end in [
        "2028-02-29T23:30:00Z",
        "2028-03-31T23:30:00Z",
        "2028-04-30T23:30:00Z",
    ] {
        app.advance_to(at(end)).await;
    }
    let mut periods: Vec<_> = app.invoices(tenant).await.iter().map(period_of).collect();
    periods.reverse();
    let expected: Vec<_> = [
        ("2028-01-31T23:30:00Z", "2028-02-29T23:30:00Z"),
        ("2028-02-29T23:30:00Z", "2028-03-31T23:30:00Z"),
        ("2028-03-31T23:30:00Z", "2028-04-30T23:30:00Z"),
    ]
    .iter()
    .map(|(s, e)| (timestamp(at(s)), timestamp(at(e))))
    .collect();
    assert_eq!(periods, expected);
}

#[tokio::test]
async fn a_subscription_started_on_feb_29_renews_on_the_29th_then_on_month_ends() {
    let app = TestApp::spawn().await;
    app.clock.set(at("2028-02-29T08:00:00Z"));
    let (tenant, subscription) = app.subscribed_tenant("free").await;
    assert_eq!(
        subscription.current_period_end_time,
        Some(timestamp(at("2028-03-29T08:00:00Z")))
    );
    app.advance_to(at("2028-03-29T08:00:00Z")).await;
    let renewed = &app.subscriptions(tenant).await[0];
    assert_eq!(
        renewed.current_period_end_time,
        Some(timestamp(at("2028-04-29T08:00:00Z")))
    );
}

#[tokio::test]
async fn two_workers_closing_one_period_at_once_issue_one_invoice() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.subscribed_tenant("pro").await;
    app.clock.set(at("2027-04-15T09:00:00Z"));
    let jobs = &app.running.as_ref().unwrap().jobs;
    let (a, b) = tokio::join!(jobs.run_due(), jobs.run_due());
    a.unwrap();
    b.unwrap();
    // The service's own worker may have been a third.
    app.run_jobs().await;
    let invoices = app.invoices(tenant).await;
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    assert_eq!(invoices[0].total, 3_509, "2,900 + 21 % tax");
}

#[tokio::test]
async fn concurrent_closes_of_many_tenants_take_gap_free_numbers() {
    let app = TestApp::spawn().await;
    let tenants = 30;
    let mut ids = Vec::new();
    for _ in 0..tenants {
        ids.push(app.subscribed_tenant("pro").await.0);
    }
    app.clock.set(at("2027-04-15T09:00:00Z"));
    let jobs = &app.running.as_ref().unwrap().jobs;
    let runs = join_all((0..4).map(|_| jobs.run_due())).await;
    for run in runs {
        run.unwrap();
    }
    app.run_jobs().await;
    let mut numbers = BTreeSet::new();
    for tenant in ids {
        let invoices = app.invoices(tenant).await;
        assert_eq!(invoices.len(), 1);
        numbers.insert(invoices[0].number.clone());
    }
    let expected: BTreeSet<String> = (1..=tenants).map(|n| format!("KEEL-2027-{n:06}")).collect();
    assert_eq!(numbers, expected);
}

#[tokio::test]
async fn usage_arriving_after_its_period_closed_is_a_late_line_on_the_next_invoice() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.subscribed_tenant("pro").await;
    let during = start_time() + chrono::Duration::days(2);
    app.record_usage(tenant, "marketplace.orders", 1, during, "o-early")
        .await;
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    let first = app.invoices(tenant).await[0].clone();
    // 300 orders in the closed period, reported late.
    for n in 0..300 {
        app.record_usage(
            tenant,
            "marketplace.orders",
            1,
            during,
            &format!("late-{n}"),
        )
        .await;
    }
    app.advance_to(at("2027-05-15T09:00:00Z")).await;
    let invoices = app.invoices(tenant).await;
    assert_eq!(invoices.len(), 2);
    assert_eq!(invoices[1], first, "the closed invoice is never re-billed");
    let late = invoices[0]
        .line_items
        .iter()
        .find(|l| l.description.contains("late usage"))
        .expect("a late usage line");
    // Late usage pays per unit: the closed period's included orders are not given again.
    assert_eq!(
        (late.quantity, late.unit_amount, late.amount),
        (300, 10, 3_000)
    );
    let current = invoices[0]
        .line_items
        .iter()
        .find(|l| l.meter_id == "marketplace.orders" && !l.description.contains("late"))
        .unwrap();
    assert_eq!(current.quantity, 0);
}

#[tokio::test]
async fn a_period_close_racing_usage_bills_every_record_exactly_once() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.subscribed_tenant("pro").await;
    let during = start_time() + chrono::Duration::days(1);
    app.clock.set(at("2027-04-15T09:00:00Z"));
    let jobs = &app.running.as_ref().unwrap().jobs;
    let writes = join_all((0..40).map(|n| {
        let app = &app;
        async move {
            app.record_usage(
                tenant,
                "marketplace.orders",
                1,
                during,
                &format!("race-{n}"),
            )
            .await;
        }
    }));
    let (_, closed) = tokio::join!(writes, jobs.run_due());
    closed.unwrap();
    app.run_jobs().await;
    app.advance_to(at("2027-05-15T09:00:00Z")).await;
    let invoices = app.invoices(tenant).await;
    assert_eq!(invoices.len(), 2);
    let admin = app.admin_pool().await;
    let (unbilled,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM billing.usage_records WHERE invoice_id IS NULL")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(unbilled, 0, "every record billed");
    // What the close did not see is the next invoice's late usage, and only that.
    let (seen_late,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM billing.usage_records WHERE invoice_id::text = $1")
            .bind(&invoices[0].id)
            .fetch_one(&admin)
            .await
            .unwrap();
    let late_line = invoices[0]
        .line_items
        .iter()
        .find(|l| l.description.contains("late usage"))
        .map_or(0, |l| l.quantity);
    assert_eq!(late_line, seen_late);
    let (seen_on_time,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM billing.usage_records WHERE invoice_id::text = $1")
            .bind(&invoices[1].id)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(seen_on_time + seen_late, 40);
    let on_time_line = invoices[1]
        .line_items
        .iter()
        .find(|l| l.meter_id == "marketplace.orders")
        .unwrap();
    assert!(
        on_time_line
            .description
            .starts_with(&format!("marketplace.orders: {seen_on_time} used"))
    );
}

#[tokio::test]
async fn only_platform_admins_void_and_only_open_invoices() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.subscribed_tenant("pro").await;
    let (free_tenant, _) = app.subscribed_tenant("free").await;
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    let open = app.invoices(tenant).await[0].clone();
    let paid = app.invoices(free_tenant).await[0].clone();
    let void = |tenant: TenantId, invoice: &str| pb::VoidInvoiceRequest {
        tenant_id: tenant.to_string(),
        invoice_id: invoice.into(),
        reason: "duplicate".into(),
    };
    assert_status(
        app.owner(tenant).void_invoice(void(tenant, &open.id)).await,
        ErrorCode::Authz,
    );
    let voided = app
        .platform_admin()
        .void_invoice(void(tenant, &open.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(voided.state, pb::InvoiceState::Void as i32);
    assert_status(
        app.platform_admin()
            .void_invoice(void(tenant, &open.id))
            .await,
        ErrorCode::FailedPrecondition,
    );
    let status = assert_status(
        app.platform_admin()
            .void_invoice(void(free_tenant, &paid.id))
            .await,
        ErrorCode::FailedPrecondition,
    );
    assert!(status.message().contains("PAID"), "{status:?}");
    assert_status(
        app.platform_admin()
            .void_invoice(void(free_tenant, &uuid::Uuid::now_v7().to_string()))
            .await,
        ErrorCode::NotFound,
    );
    let voided_events = app
        .events()
        .await
        .of_type("billing.invoice.voided", 1)
        .await;
    assert_eq!(voided_events.len(), 1);
}

#[tokio::test]
async fn invoices_are_listed_newest_first_and_filtered_by_state() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.subscribed_tenant("pro").await;
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    app.advance_to(at("2027-05-15T09:00:00Z")).await;
    let all = app.invoices(tenant).await;
    assert_eq!(all.len(), 2);
    assert!(all[0].number > all[1].number, "newest first");
    app.platform_admin()
        .void_invoice(pb::VoidInvoiceRequest {
            tenant_id: tenant.to_string(),
            invoice_id: all[1].id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    let admin = app.billing(&app.token(tenant, roles::ADMIN));
    let open = admin
        .clone()
        .list_invoices(pb::ListInvoicesRequest {
            tenant_id: tenant.to_string(),
            state: pb::InvoiceState::Open as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .invoices;
    assert_eq!(
        open.iter().map(|i| &i.id).collect::<Vec<_>>(),
        vec![&all[0].id]
    );
    let page = admin
        .clone()
        .list_invoices(pb::ListInvoicesRequest {
            tenant_id: tenant.to_string(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.invoices.len(), 1);
    assert!(!page.next_page_token.is_empty());
    let got = admin
        .clone()
        .get_invoice(pb::GetInvoiceRequest {
            tenant_id: tenant.to_string(),
            invoice_id: all[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, all[0]);
    assert_eq!(
        got.due_time,
        Some(timestamp(at("2027-05-29T09:00:00Z"))),
        "14 days' terms"
    );
}

#[tokio::test]
async fn a_same_day_plan_change_charges_each_price_only_for_its_seconds() {
    let app = TestApp::spawn().await;
    let (tenant, subscription) = app.subscribed_tenant("free").await;
    let change = |price: String| pb::UpdateSubscriptionRequest {
        tenant_id: tenant.to_string(),
        subscription_id: subscription.id.clone(),
        subscription: Some(pb::Subscription {
            price_id: price,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["price_id".into()],
        }),
    };
    app.clock.advance(chrono::Duration::hours(1));
    app.owner(tenant)
        .update_subscription(change(app.flat_price("pro").await))
        .await
        .unwrap();
    app.clock.advance(chrono::Duration::hours(1));
    app.owner(tenant)
        .update_subscription(change(app.flat_price("enterprise").await))
        .await
        .unwrap();
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    let invoices = app.invoices(tenant).await;
    assert_eq!(invoices.len(), 1, "one invoice for the period");
    let full = 31 * 86_400_i64;
    let prorated = |amount: i64, seconds: i64| (amount * seconds * 2 + full) / (2 * full);
    let flat: Vec<i64> = invoices[0]
        .line_items
        .iter()
        .filter(|l| l.meter_id.is_empty())
        .map(|l| l.amount)
        .collect();
    let expected_total = prorated(2_900, 3_600) + prorated(49_900, full - 7_200);
    assert_eq!(flat.iter().sum::<i64>(), expected_total, "{flat:?}");
    assert!(
        expected_total < 49_900,
        "no price charged for a whole period twice"
    );
}

#[tokio::test]
async fn canceling_immediately_issues_a_prorated_final_invoice() {
    let app = TestApp::spawn().await;
    let (tenant, subscription) = app.subscribed_tenant("pro").await;
    app.record_usage(tenant, "marketplace.orders", 1, start_time(), "o")
        .await;
    // 10 of 31 days.
    app.clock.advance(chrono::Duration::days(10));
    app.owner(tenant)
        .cancel_subscription(pb::CancelSubscriptionRequest {
            tenant_id: tenant.to_string(),
            subscription_id: subscription.id,
            immediately: true,
        })
        .await
        .unwrap();
    let invoices = app.invoices(tenant).await;
    assert_eq!(invoices.len(), 1);
    let flat = invoices[0]
        .line_items
        .iter()
        .find(|l| l.meter_id.is_empty())
        .unwrap();
    assert_eq!(flat.amount, 935, "2,900 x 10/31 = 935.48");
    assert_eq!(
        invoices[0].period_end_time,
        Some(timestamp(start_time() + chrono::Duration::days(10)))
    );
    // The period's scheduled close finds the subscription ended and issues nothing.
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    assert_eq!(app.invoices(tenant).await.len(), 1);
    let canceled = app
        .events()
        .await
        .of_type("billing.subscription.canceled", 1)
        .await;
    assert_eq!(canceled.len(), 1);
}
