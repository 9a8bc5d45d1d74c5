//! The usage log and its event: one record and one `ai.usage.recorded` per call, newest first,
//! paged, with the caller as principal.

use keel_kernel::TenantId;
use keel_proto::ai::v1 as pb;
use keel_testkit::tokens::TokenSpec;

use crate::support::{TestApp, ask, models, usage};

#[tokio::test]
async fn every_call_publishes_one_usage_event_keyed_by_its_completion_id() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let mut ids = Vec::new();
    for i in 0..3 {
        let completion = client
            .complete(ask(tenant, models::FAKE, &format!("call {i}")))
            .await
            .expect("complete")
            .into_inner();
        ids.push(completion.id);
    }
    let events = app.events().await.of_type("ai.usage.recorded", 3).await;
    assert_eq!(events.len(), 3, "exactly one event per call");
    for (event, id) in events.iter().zip(&ids) {
        assert_eq!(&event.aggregate_id, id);
        assert_eq!(&event.event_id, id, "the event id is the completion id");
        assert_eq!(event.tenant_id, tenant.to_string());
        let recorded: pb::UsageRecorded = keel_testkit::payload(event);
        let record = recorded.record.expect("record");
        assert_eq!(&record.id, id);
        assert_eq!(record.status, pb::CallStatus::Succeeded as i32);
        assert!(record.usage.expect("usage").cost_micros > 0);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_usage_log_is_newest_first_paged_and_names_api_keys() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let key_token = app.issuer.token(
        TokenSpec::api_key("key-123", tenant)
            .perms(["ai.completion.create", "ai.usage.read"])
            .scopes(["ai.*.*"]),
    );
    let mut client = app.client(&key_token);
    for i in 0..5 {
        client
            .complete(ask(tenant, models::LOCAL, &format!("call number {i}")))
            .await
            .expect("complete");
    }
    let all = usage(&mut client, tenant).await;
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|r| r.principal_id == "apikey:key-123"));
    let times: Vec<_> = all
        .iter()
        .map(|r| r.create_time.expect("time"))
        .map(|t| (t.seconds, t.nanos))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_usage(pb::ListUsageRequest {
                tenant_id: tenant.to_string(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.usage_records.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = all.into_iter().map(|r| r.id).collect();
    assert_eq!(seen, expected);
    app.stop().await;
}
