//! Payment webhooks: signatures (rotation, tolerance), idempotency, PAID, PAST_DUE and dunning.

use keel_kernel::clock::Clock;
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::billing::v1 as pb;
use keel_testkit::{assert_status, payload};

use crate::support::{OLD_SECRET, SECRET, TestApp, at, webhook_body};

/// A tenant on `pro` whose first invoice is OPEN, with the clock at its issue.
async fn open_invoice(app: &TestApp) -> (TenantId, pb::Invoice) {
    let (tenant, _) = app.subscribed_tenant("pro").await;
    app.advance_to(at("2027-04-15T09:00:00Z")).await;
    let invoice = app.invoices(tenant).await.remove(0);
    assert_eq!(invoice.state, pb::InvoiceState::Open as i32);
    (tenant, invoice)
}

#[tokio::test]
async fn a_signed_invoice_paid_event_marks_the_invoice_paid_once() {
    let app = TestApp::spawn().await;
    let (tenant, invoice) = open_invoice(&app).await;
    let body = webhook_body(
        "evt_paid_1",
        "invoice.paid",
        &tenant.to_string(),
        &invoice.id,
    );
    let now = app.clock.now();
    let first = app
        .anonymous()
        .ingest_webhook(app.webhook(&body, SECRET, now))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (first.event_id.as_str(), first.duplicate),
        ("evt_paid_1", false)
    );
    let paid = &app.invoices(tenant).await[0];
    assert_eq!(paid.state, pb::InvoiceState::Paid as i32);
    assert_eq!(paid.amount_paid, paid.total);
    assert!(paid.paid_time.is_some());
    let again = app
        .anonymous()
        .ingest_webhook(app.webhook(&body, SECRET, now))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    let events = app.events().await.of_type("billing.invoice.paid", 1).await;
    assert_eq!(events.len(), 1, "no second effect");
    let event: pb::InvoicePaid = payload(&events[0]);
    assert_eq!(event.invoice.unwrap().id, invoice.id);
}

#[tokio::test]
async fn the_previous_secret_still_verifies_during_a_rotation() {
    let app = TestApp::spawn().await;
    let (tenant, invoice) = open_invoice(&app).await;
    let body = webhook_body(
        "evt_rotated",
        "invoice.paid",
        &tenant.to_string(),
        &invoice.id,
    );
    app.anonymous()
        .ingest_webhook(app.webhook(&body, OLD_SECRET, app.clock.now()))
        .await
        .unwrap();
    assert_eq!(
        app.invoices(tenant).await[0].state,
        pb::InvoiceState::Paid as i32
    );
}

#[tokio::test]
async fn a_wrong_secret_a_stale_timestamp_or_a_changed_body_is_refused_without_effect() {
    let app = TestApp::spawn().await;
    let (tenant, invoice) = open_invoice(&app).await;
    let body = webhook_body("evt_bad", "invoice.paid", &tenant.to_string(), &invoice.id);
    let now = app.clock.now();
    let wrong = assert_status(
        app.anonymous()
            .ingest_webhook(app.webhook(&body, "whsec_attacker", now))
            .await,
        ErrorCode::Authn,
    );
    assert!(!wrong.message().contains("whsec"), "names nothing secret");
    assert_status(
        app.anonymous()
            .ingest_webhook(app.webhook(&body, SECRET, now - chrono::Duration::seconds(301)))
            .await,
        ErrorCode::Authn,
    );
    let mut tampered = app.webhook(&body, SECRET, now);
    tampered.payload = body.replace("evt_bad", "evt_bad2").into_bytes();
    assert_status(
        app.anonymous().ingest_webhook(tampered).await,
        ErrorCode::Authn,
    );
    let mut unsigned = app.webhook(&body, SECRET, now);
    unsigned.signature = "t=1".into();
    assert_status(
        app.anonymous().ingest_webhook(unsigned).await,
        ErrorCode::Authn,
    );
    // Within the tolerance, a signature from 299 s ago still verifies.
    app.anonymous()
        .ingest_webhook(app.webhook(&body, SECRET, now - chrono::Duration::seconds(299)))
        .await
        .unwrap();
    assert_eq!(
        app.invoices(tenant).await[0].state,
        pb::InvoiceState::Paid as i32
    );
}

#[tokio::test]
async fn a_failed_payment_makes_the_subscription_past_due_and_dunning_gives_up_after_the_grace() {
    let app = TestApp::spawn().await;
    let (tenant, invoice) = open_invoice(&app).await;
    let body = webhook_body(
        "evt_failed",
        "invoice.payment_failed",
        &tenant.to_string(),
        &invoice.id,
    );
    app.anonymous()
        .ingest_webhook(app.webhook(&body, SECRET, app.clock.now()))
        .await
        .unwrap();
    assert_eq!(
        app.subscriptions(tenant).await[0].state,
        pb::SubscriptionState::PastDue as i32
    );
    // Six days later: still in grace.
    app.advance_to(at("2027-04-21T09:00:00Z")).await;
    assert_eq!(
        app.invoices(tenant).await[0].state,
        pb::InvoiceState::Open as i32
    );
    app.advance_to(at("2027-04-22T09:00:00Z")).await;
    let invoices = app.invoices(tenant).await;
    assert_eq!(invoices[0].state, pb::InvoiceState::Uncollectible as i32);
    let subscription = &app.subscriptions(tenant).await[0];
    assert_eq!(subscription.state, pb::SubscriptionState::Canceled as i32);
    let log = app.events().await;
    assert_eq!(
        log.of_type("billing.invoice.uncollectible", 1).await.len(),
        1
    );
    let canceled: pb::SubscriptionCanceled =
        payload(&log.of_type("billing.subscription.canceled", 1).await[0]);
    assert_eq!(canceled.reason, "uncollectible");
}

#[tokio::test]
async fn a_payment_within_the_grace_period_restores_the_subscription() {
    let app = TestApp::spawn().await;
    let (tenant, invoice) = open_invoice(&app).await;
    let failed = webhook_body(
        "evt_f",
        "invoice.payment_failed",
        &tenant.to_string(),
        &invoice.id,
    );
    app.anonymous()
        .ingest_webhook(app.webhook(&failed, SECRET, app.clock.now()))
        .await
        .unwrap();
    app.clock.advance(chrono::Duration::days(2));
    let paid = webhook_body("evt_p", "invoice.paid", &tenant.to_string(), &invoice.id);
    app.anonymous()
        .ingest_webhook(app.webhook(&paid, SECRET, app.clock.now()))
        .await
        .unwrap();
    assert_eq!(
        app.subscriptions(tenant).await[0].state,
        pb::SubscriptionState::Active as i32
    );
    app.advance_to(at("2027-04-23T09:00:00Z")).await;
    assert_eq!(
        app.invoices(tenant).await[0].state,
        pb::InvoiceState::Paid as i32
    );
    assert_eq!(
        app.subscriptions(tenant).await[0].state,
        pb::SubscriptionState::Active as i32
    );
}

#[tokio::test]
async fn an_unknown_provider_or_an_unparsable_body_is_refused() {
    let app = TestApp::spawn().await;
    let mut request = app.webhook("{}", SECRET, app.clock.now());
    request.provider = "paypal".into();
    assert_status(
        app.anonymous().ingest_webhook(request).await,
        ErrorCode::Validation,
    );
    assert_status(
        app.anonymous()
            .ingest_webhook(app.webhook("not json", SECRET, app.clock.now()))
            .await,
        ErrorCode::Validation,
    );
    // An event type billing does not act on is acknowledged (and recorded) without effect.
    let other = r#"{"id":"evt_other","type":"customer.created","data":{"object":{}}}"#;
    let answer = app
        .anonymous()
        .ingest_webhook(app.webhook(other, SECRET, app.clock.now()))
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.duplicate);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_event_have_one_effect() {
    let app = TestApp::spawn().await;
    let (tenant, invoice) = open_invoice(&app).await;
    let body = webhook_body(
        "evt_raced",
        "invoice.paid",
        &tenant.to_string(),
        &invoice.id,
    );
    let now = app.clock.now();
    let answers = futures::future::join_all((0..8).map(|_| {
        let mut client = app.anonymous();
        let request = app.webhook(&body, SECRET, now);
        async move { client.ingest_webhook(request).await }
    }))
    .await;
    let firsts = answers
        .into_iter()
        .map(|a| a.expect("accepted").into_inner())
        .filter(|a| !a.duplicate)
        .count();
    assert_eq!(firsts, 1);
    let paid = app.events().await.of_type("billing.invoice.paid", 1).await;
    assert_eq!(paid.len(), 1);
}
