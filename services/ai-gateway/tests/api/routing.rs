//! Routing over deployments: fallback before the first streamed byte, none after it, and the
//! per-deployment circuit breaker.

use keel_kernel::TenantId;
use keel_proto::ai::v1 as pb;
use keel_testkit::fake_llm::Fault;

use crate::support::{TestApp, ask, collect, models, usage};

#[tokio::test]
async fn a_deployment_failing_before_its_first_byte_falls_back_to_the_next() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    for fault in [
        Fault::ServerError,
        Fault::RateLimited,
        Fault::Malformed,
        Fault::Stall,
    ] {
        app.backup.set_fault(Some(fault));
        let (text, last) = collect(&mut client, ask(tenant, models::WITH_FALLBACK, "fall back"))
            .await
            .unwrap_or_else(|(_, status)| panic!("{fault:?}: {status:?}"));
        assert_eq!(text, "Fake answer: fall back", "{fault:?}");
        assert_eq!(last.finish_reason, pb::FinishReason::Stop as i32);
        // The breaker must not hide the first deployment from the next fault: reset it.
        app.backup.set_fault(None);
        collect(
            &mut client,
            ask(tenant, models::WITH_FALLBACK, "healthy again"),
        )
        .await
        .expect("the first deployment serves again");
    }
    let records = usage(&mut client, tenant).await;
    let served_by: Vec<&str> = records.iter().rev().map(|r| r.provider.as_str()).collect();
    assert_eq!(
        served_by,
        vec![
            "fake", "backup", "fake", "backup", "fake", "backup", "fake", "backup"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failure_after_the_first_byte_is_an_error_and_never_a_fallback() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    app.backup.set_fault(Some(Fault::ErrorAfterFirst));
    let (text, status) = collect(
        &mut client,
        ask(tenant, models::WITH_FALLBACK, "no fallback"),
    )
    .await
    .expect_err("an error after text");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(
        text, "Fake",
        "the text before the failure, and nothing appended"
    );
    assert_eq!(
        app.fake.request_count(),
        0,
        "the second deployment was not called"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_deployment_failing_repeatedly_is_skipped_by_its_open_circuit() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    app.backup.set_fault(Some(Fault::ServerError));
    for _ in 0..5 {
        collect(&mut client, ask(tenant, models::WITH_FALLBACK, "breaker"))
            .await
            .expect("served by the second deployment");
    }
    // The threshold is 2: after two failures the first deployment is no longer called.
    assert_eq!(app.backup.request_count(), 2);
    assert_eq!(app.fake.request_count(), 5);
    app.stop().await;
}

#[tokio::test]
async fn when_every_circuit_is_open_the_call_is_unavailable_without_calling_anyone() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    app.fake.set_fault(Some(Fault::ServerError));
    for _ in 0..2 {
        client
            .complete(ask(tenant, models::FAKE, "down"))
            .await
            .expect_err("the only deployment is down");
    }
    let status = client
        .complete(ask(tenant, models::FAKE, "down"))
        .await
        .expect_err("circuit open");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("circuits open"), "{status:?}");
    assert_eq!(app.fake.request_count(), 2);
    app.stop().await;
}
