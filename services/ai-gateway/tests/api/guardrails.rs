//! Guardrails: personal data never reaches a provider, blocked terms and oversized prompts are
//! refused as CONTENT_FILTER, logged BLOCKED and free, and output checks stop a stream.

use keel_ai_gateway::settings::GuardrailOverride;
use keel_kernel::TenantId;
use keel_proto::ai::v1 as pb;

use crate::support::{TestApp, ask, collect, models, quota, usage};

#[tokio::test]
async fn each_kind_of_personal_data_is_redacted_before_the_provider_sees_the_prompt() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let prompt = "Write to jane.doe@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111, \
                  IBAN GB82 WEST 1234 5698 7654 32. Order 4111 1111 1111 1112 stays.";
    client
        .complete(ask(tenant, models::FAKE, prompt))
        .await
        .expect("complete");
    let seen = app.fake.requests()[0].prompt_text();
    for secret in [
        "jane.doe@example.com",
        "7946 0958",
        "4111 1111 1111 1111",
        "GB82 WEST",
    ] {
        assert!(
            !seen.contains(secret),
            "{secret} reached the provider: {seen}"
        );
    }
    for label in ["[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]"] {
        assert!(seen.contains(label), "{label} in {seen}");
    }
    assert!(
        seen.contains("4111 1111 1111 1112"),
        "a number failing Luhn is not a card"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_blocked_term_answers_content_filter_is_logged_blocked_and_costs_nothing() {
    let app = TestApp::spawn_with(|settings| {
        settings.guardrails.defaults.blocked_terms = vec!["Project Falcon".into()];
    })
    .await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let completion = client
        .complete(ask(tenant, models::FAKE, "What is project FALCON about?"))
        .await
        .expect("an answer, filtered")
        .into_inner();
    assert_eq!(
        completion.finish_reason,
        pb::FinishReason::ContentFilter as i32
    );
    let (_, last) = collect(
        &mut client,
        ask(tenant, models::FAKE, "project falcon, streamed"),
    )
    .await
    .expect("a filtered stream");
    assert_eq!(last.finish_reason, pb::FinishReason::ContentFilter as i32);
    assert_eq!(app.fake.request_count(), 0, "the provider never saw it");
    let records = usage(&mut client, tenant).await;
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record.status, pb::CallStatus::Blocked as i32);
        let tokens = record.usage.clone().expect("usage");
        assert_eq!((tokens.total_tokens, tokens.cost_micros), (0, 0));
    }
    let quota = quota(&mut client, tenant).await;
    assert_eq!((quota.used_tokens, quota.reserved_tokens), (0, 0));
    app.stop().await;
}

#[tokio::test]
async fn a_prompt_over_the_size_limit_is_blocked() {
    let app = TestApp::spawn_with(|settings| {
        settings.guardrails.defaults.max_prompt_tokens = 20;
    })
    .await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let long = "word ".repeat(50);
    let completion = client
        .complete(ask(tenant, models::FAKE, &long))
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(
        completion.finish_reason,
        pb::FinishReason::ContentFilter as i32
    );
    assert_eq!(app.fake.request_count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_override_applies_to_that_tenant_only() {
    let strict = TenantId::new();
    let app = TestApp::spawn_with(move |settings| {
        settings.guardrails.tenants.insert(
            strict.to_string(),
            GuardrailOverride {
                blocked_terms: Some(vec!["merger".into()]),
                redact_emails: Some(false),
                ..GuardrailOverride::default()
            },
        );
    })
    .await;
    let other = TenantId::new();
    let blocked = app
        .member(strict)
        .complete(ask(strict, models::FAKE, "the merger"))
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(
        blocked.finish_reason,
        pb::FinishReason::ContentFilter as i32
    );
    let allowed = app
        .member(other)
        .complete(ask(other, models::FAKE, "the merger, a@b.co"))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(allowed.finish_reason, pb::FinishReason::Stop as i32);
    assert!(app.fake.requests()[0].prompt_text().contains("[EMAIL]"));
    app.member(strict)
        .complete(ask(strict, models::FAKE, "mail a@b.co"))
        .await
        .expect("answered");
    assert!(
        app.fake.requests()[1].prompt_text().contains("a@b.co"),
        "redaction off for it"
    );
    app.stop().await;
}

#[tokio::test]
async fn output_checks_stop_a_stream_at_the_chunk_that_brings_a_blocked_term() {
    let app = TestApp::spawn_with(|settings| {
        settings.guardrails.defaults.check_output = true;
        settings.guardrails.defaults.blocked_terms = vec!["secret".into()];
    })
    .await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    // The question is clean; the memory the local provider summarises is not.
    crate::support::remember(
        &mut client,
        tenant,
        "vault",
        "kb",
        "The vault code is secret sauce.",
        "",
    )
    .await;
    let (text, last) = collect(
        &mut client,
        pb::CompleteRequest {
            memory_namespace: "kb".into(),
            ..ask(tenant, models::LOCAL, "What is the vault code?")
        },
    )
    .await
    .expect("a filtered stream");
    assert_eq!(
        last.finish_reason,
        pb::FinishReason::ContentFilter as i32,
        "{text}"
    );
    assert!(text.contains("vault code is"), "{text}");
    assert!(!text.to_lowercase().contains("secret"), "{text}");
    let records = usage(&mut client, tenant).await;
    assert_eq!(records[0].status, pb::CallStatus::Blocked as i32);
    assert_eq!(records[0].usage.clone().expect("usage").cost_micros, 0);
    app.stop().await;
}

#[tokio::test]
async fn guardrail_hits_are_counted_by_rule_in_the_metrics() {
    let app = TestApp::spawn_with(|settings| {
        settings.guardrails.defaults.blocked_terms = vec!["forbidden".into()];
    })
    .await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    client
        .complete(ask(tenant, models::LOCAL, "mail a@b.co and c@d.co"))
        .await
        .expect("answered");
    client
        .complete(ask(tenant, models::LOCAL, "a forbidden word"))
        .await
        .expect("filtered");
    let metrics = reqwest::get(format!("http://{}/metrics", app.admin_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"keel_ai_guardrail_hits_total{service="ai-gateway",rule="email"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"keel_ai_guardrail_hits_total{service="ai-gateway",rule="blocked_term"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"keel_ai_calls_total{service="ai-gateway",model="local-default",provider="local",status="blocked"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}
