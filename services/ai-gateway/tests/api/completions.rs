//! Completions through the local development provider and the fake providers' two wire formats.

use keel_ai_gateway::Settings;
use keel_kernel::config::{Config, Validate};
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::ai::v1 as pb;
use keel_testkit::assert_status;

use crate::support::{TestApp, ask, collect, models, usage};

#[test]
fn the_shipped_config_is_valid_and_answers_locally_by_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/ai-gateway.yaml");
    let config: Config<Settings> = Config::load(std::path::Path::new(path)).expect("config loads");
    config.app.validate().expect("valid settings");
    assert_eq!(config.app.default_model, "local-default");
    assert_eq!(config.database.schema, "ai_gateway");
}

#[tokio::test]
async fn the_local_provider_answers_a_completion_and_counts_tokens_with_the_tokenizer() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let completion = client
        .complete(pb::CompleteRequest {
            model: String::new(),
            ..ask(tenant, "", "What is the capital of France?")
        })
        .await
        .expect("complete")
        .into_inner();
    let text = completion.message.expect("a message").content;
    assert!(text.contains("What is the capital of France?"), "{text}");
    assert_eq!(completion.model, models::LOCAL);
    assert_eq!(completion.finish_reason, pb::FinishReason::Stop as i32);
    let tokens = completion.usage.expect("usage");
    assert_eq!(
        tokens.completion_tokens,
        keel_ai_gateway::domain::tokens::count(&text)
    );
    assert_eq!(
        tokens.total_tokens,
        tokens.prompt_tokens + tokens.completion_tokens
    );
    let records = usage(&mut client, tenant).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, completion.id);
    assert_eq!(records[0].provider, "local");
    assert_eq!(records[0].status, pb::CallStatus::Succeeded as i32);
    app.stop().await;
}

#[tokio::test]
async fn the_local_provider_streams_word_by_word_and_stops_at_max_tokens() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let mut stream = client
        .stream_complete(pb::CompleteRequest {
            max_tokens: 8,
            ..ask(
                tenant,
                models::LOCAL,
                "one two three four five six seven eight nine ten",
            )
        })
        .await
        .expect("stream")
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        chunks.push(chunk);
    }
    assert!(chunks.len() > 2, "several chunks: {chunks:?}");
    let last = chunks.last().expect("a last chunk");
    assert_eq!(last.finish_reason, pb::FinishReason::Length as i32);
    let tokens = last.usage.clone().expect("usage on the last chunk");
    assert!(tokens.completion_tokens <= 8, "{tokens:?}");
    assert!(chunks.iter().all(|c| c.id == last.id));
    app.stop().await;
}

#[tokio::test]
async fn an_openai_compatible_provider_streams_and_its_usage_report_is_charged() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let (text, last) = collect(&mut client, ask(tenant, models::FAKE, "hello there"))
        .await
        .expect("stream");
    assert_eq!(text, "Fake answer: hello there");
    let tokens = last.usage.expect("usage");
    // The fake counts words: 2 in the prompt, 4 chunks sent.
    assert_eq!((tokens.prompt_tokens, tokens.completion_tokens), (2, 4));
    // $1 and $2 per million tokens: 2 + 8 micros.
    assert_eq!(tokens.cost_micros, 10);
    let request = &app.fake.requests()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.body["stream_options"]["include_usage"], true);
    assert_eq!(request.body["model"], "fake-1");
    app.stop().await;
}

#[tokio::test]
async fn the_anthropic_messages_api_is_spoken_with_input_and_output_tokens_from_the_stream() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let completion = client
        .complete(pb::CompleteRequest {
            messages: vec![pb::ChatMessage {
                role: pb::ChatRole::System as i32,
                content: "be brief".into(),
            }],
            ..ask(tenant, models::FAKE_ANTHROPIC, "hi again")
        })
        .await
        .expect("complete")
        .into_inner();
    assert_eq!(
        completion.message.expect("message").content,
        "Fake answer: hi again"
    );
    let tokens = completion.usage.expect("usage");
    assert_eq!((tokens.prompt_tokens, tokens.completion_tokens), (4, 4));
    let request = &app.fake.requests()[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.body["system"], "be brief");
    assert_eq!(request.body["messages"][0]["role"], "user");
    let records = usage(&mut client, tenant).await;
    assert_eq!(records[0].provider, "fake-anthropic");
    app.stop().await;
}

#[tokio::test]
async fn invalid_requests_name_every_field_at_fault() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let status = assert_status(
        client
            .complete(pb::CompleteRequest {
                tenant_id: tenant.to_string(),
                model: "no-such-model".into(),
                max_tokens: -1,
                temperature: 3.0,
                ..Default::default()
            })
            .await,
        ErrorCode::Validation,
    );
    let fields = keel_testkit::violated_fields(&status);
    for field in ["model", "prompt", "max_tokens", "temperature"] {
        assert!(fields.contains(&field.to_owned()), "{field} in {fields:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_caller_of_another_tenant_or_without_the_permission_is_refused() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut other = app.member(TenantId::new());
    assert_status(
        other.complete(ask(tenant, models::LOCAL, "hi")).await,
        ErrorCode::Authz,
    );
    let mut viewer = app.client(&app.token(tenant, keel_kernel::auth::roles::VIEWER));
    assert_status(
        viewer.complete(ask(tenant, models::LOCAL, "hi")).await,
        ErrorCode::Authz,
    );
    assert_eq!(app.fake.request_count(), 0);
    app.stop().await;
}
