//! Every fault mode of the fake provider, through both APIs: a failure before the first byte
//! charges nothing and is the RPC's status; a failure after it ends the stream with an error
//! status (never a last chunk that looks complete) and charges what was produced.

use keel_kernel::{ErrorCode, TenantId};
use keel_proto::ai::v1 as pb;
use keel_testkit::assert_status;
use keel_testkit::fake_llm::Fault;

use crate::support::{Client, TestApp, ask, collect, models, quota, usage};

fn prompt(fault: Fault) -> String {
    format!("alpha beta gamma delta {}", fault.marker())
}

/// A stream that fails midway: the text before the failure arrived, then an UNAVAILABLE status;
/// the call is logged FAILED and charged its prompt plus the tokens produced.
async fn fails_after_text(app: &TestApp, model: &str, fault: Fault) {
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let (text, status) = collect(&mut client, ask(tenant, model, &prompt(fault)))
        .await
        .expect_err("the stream ends with an error");
    assert_eq!(
        status.code(),
        tonic::Code::Unavailable,
        "{model} {fault:?}: {status:?}"
    );
    assert!(
        !text.is_empty(),
        "{model} {fault:?}: text before the failure"
    );
    assert_charged_for(&mut client, tenant, &text).await;
}

async fn assert_charged_for(client: &mut Client, tenant: TenantId, text: &str) {
    let records = usage(client, tenant).await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.status, pb::CallStatus::Failed as i32);
    let tokens = record.usage.clone().expect("usage");
    assert_eq!(
        tokens.completion_tokens,
        keel_ai_gateway::domain::tokens::count(text),
        "what was produced is counted with the tokenizer"
    );
    assert!(tokens.prompt_tokens > 0);
    let quota = quota(client, tenant).await;
    assert_eq!(
        quota.used_tokens, tokens.total_tokens,
        "charged what was produced"
    );
    assert_eq!(
        quota.reserved_tokens, 0,
        "the rest of the reservation is released"
    );
}

/// A call that fails before any text: the RPC's status, a FAILED record with nothing charged.
async fn fails_before_text(app: &TestApp, model: &str, fault: Fault, stream: bool) {
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let request = ask(tenant, model, &prompt(fault));
    let status = if stream {
        collect(&mut client, request).await.expect_err("refused").1
    } else {
        client.complete(request).await.expect_err("refused")
    };
    assert_eq!(
        status.code(),
        tonic::Code::Unavailable,
        "{model} {fault:?}: {status:?}"
    );
    let records = usage(&mut client, tenant).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, pb::CallStatus::Failed as i32);
    assert_eq!(records[0].usage.clone().expect("usage").total_tokens, 0);
    let quota = quota(&mut client, tenant).await;
    assert_eq!(
        (quota.used_tokens, quota.reserved_tokens),
        (0, 0),
        "rolled back"
    );
}

#[tokio::test]
async fn a_stream_cut_after_some_tokens_ends_with_an_error_and_charges_what_was_produced() {
    let app = TestApp::spawn().await;
    fails_after_text(&app, models::FAKE, Fault::CutAfter(3)).await;
    fails_after_text(&app, models::FAKE_ANTHROPIC, Fault::CutAfter(3)).await;
    app.stop().await;
}

#[tokio::test]
async fn a_provider_error_after_the_first_chunk_ends_the_stream_with_an_error() {
    let app = TestApp::spawn().await;
    fails_after_text(&app, models::FAKE, Fault::ErrorAfterFirst).await;
    fails_after_text(&app, models::FAKE_ANTHROPIC, Fault::ErrorAfterFirst).await;
    app.stop().await;
}

#[tokio::test]
async fn a_stream_that_stalls_midway_times_out_with_an_error() {
    let app = TestApp::spawn().await;
    fails_after_text(&app, models::FAKE, Fault::StallAfter(2)).await;
    app.stop().await;
}

#[tokio::test]
async fn a_unary_call_whose_stream_fails_midway_is_an_error_and_charged_what_was_produced() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let status = client
        .complete(ask(tenant, models::FAKE, &prompt(Fault::CutAfter(2))))
        .await
        .expect_err("incomplete answers are errors");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    // The fake sent "Fake" and " answer:".
    assert_charged_for(&mut client, tenant, "Fake answer:").await;
    app.stop().await;
}

#[tokio::test]
async fn a_provider_that_stalls_before_answering_times_out_and_charges_nothing() {
    let app = TestApp::spawn().await;
    fails_before_text(&app, models::FAKE, Fault::Stall, true).await;
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_chunk_before_any_text_fails_the_call_and_charges_nothing() {
    let app = TestApp::spawn().await;
    fails_before_text(&app, models::FAKE, Fault::Malformed, false).await;
    app.stop().await;
}

#[tokio::test]
async fn rate_limits_and_server_errors_fail_a_single_deployment_model_and_charge_nothing() {
    let app = TestApp::spawn().await;
    fails_before_text(&app, models::FAKE, Fault::RateLimited, false).await;
    fails_before_text(&app, models::FAKE_ANTHROPIC, Fault::ServerError, true).await;
    app.stop().await;
}

#[tokio::test]
async fn without_a_usage_report_the_tokens_are_counted_with_the_tokenizer() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let (text, last) = collect(
        &mut client,
        ask(tenant, models::FAKE, &prompt(Fault::NoUsage)),
    )
    .await
    .expect("a complete answer");
    assert_eq!(last.finish_reason, pb::FinishReason::Stop as i32);
    let tokens = last.usage.expect("usage");
    assert_eq!(
        tokens.completion_tokens,
        keel_ai_gateway::domain::tokens::count(&text)
    );
    assert!(tokens.cost_micros > 0, "a stream without usage is not free");
    let events = app.events().await.of_type("ai.usage.recorded", 1).await;
    let recorded: pb::UsageRecorded = keel_testkit::payload(&events[0]);
    assert_eq!(recorded.counted_by, "tokenizer");
    app.stop().await;
}

#[tokio::test]
async fn a_provider_usage_report_is_recorded_as_counted_by_the_provider() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    collect(&mut client, ask(tenant, models::FAKE_ANTHROPIC, "count me"))
        .await
        .expect("answer");
    let events = app.events().await.of_type("ai.usage.recorded", 1).await;
    let recorded: pb::UsageRecorded = keel_testkit::payload(&events[0]);
    assert_eq!(recorded.counted_by, "provider");
    app.stop().await;
}

#[tokio::test]
async fn a_quota_that_cannot_cover_max_tokens_is_resource_exhausted_before_any_provider_call() {
    let app = TestApp::spawn_with(crate::support::with_quota(100)).await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    assert_status(
        client
            .complete(pb::CompleteRequest {
                max_tokens: 200,
                ..ask(tenant, models::FAKE, "hi")
            })
            .await,
        ErrorCode::RateLimit,
    );
    let (_, status) = collect(
        &mut client,
        pb::CompleteRequest {
            max_tokens: 200,
            ..ask(tenant, models::FAKE, "hi")
        },
    )
    .await
    .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(app.fake.request_count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_call_and_is_charged_what_was_produced() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    // Two chunks, then the fake stalls: the client reads one and hangs up.
    let mut stream = client
        .stream_complete(ask(tenant, models::FAKE, &prompt(Fault::StallAfter(2))))
        .await
        .expect("stream")
        .into_inner();
    let first = stream.message().await.expect("a chunk").expect("a chunk");
    assert_eq!(first.delta, "Fake");
    drop(stream);
    drop(client);
    let mut reader = app.member(tenant);
    let record = keel_testkit::eventually(|| {
        let mut reader = reader.clone();
        async move { usage(&mut reader, tenant).await.into_iter().next() }
    })
    .await;
    assert_eq!(record.status, pb::CallStatus::Failed as i32);
    let tokens = record.usage.expect("usage");
    assert!(tokens.completion_tokens >= 1, "{tokens:?}");
    let quota = quota(&mut reader, tenant).await;
    assert_eq!(quota.used_tokens, tokens.total_tokens);
    assert_eq!(quota.reserved_tokens, 0);
    app.stop().await;
}
