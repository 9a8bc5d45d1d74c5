//! The token quota: reservations that hold under concurrency, and the limit from billing.

use std::collections::HashMap;

use keel_ai_gateway::domain::{ChatMessage, ChatRole, tokens};
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::ai::v1 as pb;
use keel_proto::billing::v1 as billing;
use keel_testkit::eventually;

use crate::support::{TestApp, ask, models, quota, with_quota};

/// A prompt whose echo outruns `max_tokens`: every call is charged exactly its reservation.
const PROMPT: &str =
    "go go go go go go go go go go go go go go go go go go go go go go go go go go go go go go";
const MAX_TOKENS: i32 = 20;

fn reservation() -> i64 {
    tokens::count_prompt(&[ChatMessage::new(ChatRole::User, PROMPT)]) + i64::from(MAX_TOKENS)
}

#[tokio::test]
async fn a_hundred_concurrent_calls_against_a_quota_for_ten_never_overspend() {
    let limit = 10 * reservation();
    let app = TestApp::spawn_with(with_quota(limit)).await;
    let tenant = TenantId::new();
    let calls = (0..100).map(|_| {
        let mut client = app.member(tenant);
        tokio::spawn(async move {
            client
                .complete(pb::CompleteRequest {
                    max_tokens: MAX_TOKENS,
                    ..ask(tenant, models::LOCAL, PROMPT)
                })
                .await
        })
    });
    let results = futures::future::join_all(calls).await;
    let mut succeeded = 0;
    for result in results {
        match result.expect("task") {
            Ok(completion) => {
                let completion = completion.into_inner();
                assert_eq!(completion.finish_reason, pb::FinishReason::Length as i32);
                assert_eq!(completion.usage.expect("usage").total_tokens, reservation());
                succeeded += 1;
            }
            Err(status) => assert_eq!(
                keel_kernel::Error::from_status(&status).code(),
                ErrorCode::RateLimit,
                "{status:?}"
            ),
        }
    }
    assert!(
        succeeded <= 10,
        "{succeeded} calls succeeded on a quota for 10"
    );
    assert!(succeeded >= 1, "the quota covers some calls");
    let quota = quota(&mut app.member(tenant), tenant).await;
    assert!(quota.used_tokens <= quota.limit_tokens, "{quota:?}");
    assert_eq!(quota.used_tokens, succeeded * reservation());
    assert_eq!(quota.reserved_tokens, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_billing_has_not_told_about_gets_the_default_quota_for_the_calendar_month() {
    let app = TestApp::spawn_with(with_quota(5_000)).await;
    let tenant = TenantId::new();
    let quota = quota(&mut app.member(tenant), tenant).await;
    assert_eq!(quota.limit_tokens, 5_000);
    assert_eq!(quota.remaining_tokens, 5_000);
    let start = quota.period_start_time.expect("start");
    let end = quota.period_end_time.expect("end");
    assert!(end.seconds > start.seconds);
    app.stop().await;
}

async fn publish_entitlements(app: &TestApp, tenant: TenantId, limit: Option<i64>, version: i64) {
    let limits: HashMap<String, i64> = limit
        .map(|l| HashMap::from([("ai.tokens.monthly".to_owned(), l)]))
        .unwrap_or_default();
    let start = chrono::Utc::now() - chrono::Duration::days(3);
    let end = start + chrono::Duration::days(30);
    let payload = billing::EntitlementsChanged {
        tenant_id: tenant.to_string(),
        plan_id: "pro".into(),
        limits,
        modules: vec!["ai".into()],
        period_start_time: Some(keel_kernel::grpc::timestamp(start)),
        period_end_time: Some(keel_kernel::grpc::timestamp(end)),
        version,
    };
    app.events()
        .await
        .publish(
            "billing",
            "billing.entitlements.changed",
            &tenant.to_string(),
            version,
            &payload,
        )
        .await;
}

#[tokio::test]
async fn billings_entitlements_set_the_limit_and_the_newest_version_wins() {
    let app = TestApp::spawn_with(with_quota(1_000)).await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    publish_entitlements(&app, tenant, Some(250_000), 2).await;
    eventually(|| {
        let mut client = client.clone();
        async move { (quota(&mut client, tenant).await.limit_tokens == 250_000).then_some(()) }
    })
    .await;
    // An older version arriving late changes nothing; a newer one applies.
    publish_entitlements(&app, tenant, Some(7), 1).await;
    publish_entitlements(&app, tenant, Some(-1), 3).await;
    eventually(|| {
        let mut client = client.clone();
        async move { (quota(&mut client, tenant).await.limit_tokens == -1).then_some(()) }
    })
    .await;
    let unlimited = quota(&mut client, tenant).await;
    assert_eq!(unlimited.remaining_tokens, -1);
    client
        .complete(ask(tenant, models::LOCAL, "unlimited now"))
        .await
        .expect("an unlimited plan answers");
    app.stop().await;
}

#[tokio::test]
async fn a_plan_without_the_ai_tokens_limit_grants_no_tokens() {
    let app = TestApp::spawn_with(with_quota(1_000_000)).await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    publish_entitlements(&app, tenant, None, 1).await;
    eventually(|| {
        let mut client = client.clone();
        async move { (quota(&mut client, tenant).await.limit_tokens == 0).then_some(()) }
    })
    .await;
    let status = client
        .complete(ask(tenant, models::LOCAL, "anything"))
        .await
        .expect_err("no tokens granted");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    app.stop().await;
}
