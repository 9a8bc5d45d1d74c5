//! What depends on time and retries: idempotent retries (`request_id`), the breaker's half-open
//! probe after its cooldown, the sweeper releasing orphaned reservations, period roll-over. Time
//! is the test clock's: nothing sleeps.

use keel_kernel::clock::Clock;
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::ai::v1 as pb;
use keel_testkit::assert_status;
use keel_testkit::fake_llm::Fault;

use crate::support::{TestApp, ask, collect, models, quota, usage};

fn with_id(request: pb::CompleteRequest, id: &str) -> pb::CompleteRequest {
    pb::CompleteRequest {
        request_id: id.into(),
        ..request
    }
}

#[tokio::test]
async fn a_retry_with_the_same_request_id_returns_the_first_completion_and_is_not_charged_twice() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let request = with_id(ask(tenant, models::FAKE, "charge me once"), "retry-1");
    let first = client
        .complete(request.clone())
        .await
        .expect("first")
        .into_inner();
    let again = client
        .complete(request.clone())
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(first, again);
    // A stream retried under the same id replays the same completion in one chunk.
    let (text, last) = collect(&mut client, request).await.expect("stream retry");
    assert_eq!(last.id, first.id);
    assert_eq!(text, first.message.clone().expect("message").content);
    assert_eq!(app.fake.request_count(), 1);
    assert_eq!(usage(&mut client, tenant).await.len(), 1);
    let quota = quota(&mut client, tenant).await;
    assert_eq!(quota.used_tokens, first.usage.expect("usage").total_tokens);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_retries_under_one_request_id_call_the_provider_once() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let calls = (0..8).map(|_| {
        let mut client = app.member(tenant);
        tokio::spawn(async move {
            client
                .complete(with_id(ask(tenant, models::FAKE, "only once"), "race-1"))
                .await
        })
    });
    let mut ids = Vec::new();
    for result in futures::future::join_all(calls).await {
        match result.expect("task") {
            Ok(completion) => ids.push(completion.into_inner().id),
            Err(status) => assert_eq!(
                keel_kernel::Error::from_status(&status).code(),
                ErrorCode::Aborted,
                "{status:?}"
            ),
        }
    }
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    assert_eq!(app.fake.request_count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_request_id_reused_for_a_different_request_is_refused() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    client
        .complete(with_id(ask(tenant, models::FAKE, "one thing"), "reused"))
        .await
        .expect("first");
    let status = assert_status(
        client
            .complete(with_id(
                ask(tenant, models::FAKE, "another thing"),
                "reused",
            ))
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(keel_testkit::violated_fields(&status), vec!["request_id"]);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_call_may_be_retried_under_the_same_request_id() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let request = with_id(ask(tenant, models::FAKE, "try again"), "after-failure");
    app.fake.set_fault(Some(Fault::ServerError));
    client
        .complete(request.clone())
        .await
        .expect_err("provider down");
    app.fake.set_fault(None);
    let completion = client
        .complete(request)
        .await
        .expect("retry works")
        .into_inner();
    assert_eq!(completion.finish_reason, pb::FinishReason::Stop as i32);
    app.stop().await;
}

#[tokio::test]
async fn an_open_circuit_lets_one_probe_through_after_its_cooldown() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    app.backup.set_fault(Some(Fault::ServerError));
    for _ in 0..4 {
        collect(&mut client, ask(tenant, models::WITH_FALLBACK, "probe"))
            .await
            .expect("served by the second deployment");
    }
    assert_eq!(app.backup.request_count(), 2, "open after two failures");
    app.backup.set_fault(None);
    app.clock.advance(chrono::Duration::seconds(61));
    collect(&mut client, ask(tenant, models::WITH_FALLBACK, "probe"))
        .await
        .expect("answer");
    assert_eq!(app.backup.request_count(), 3, "the probe reached it");
    let records = usage(&mut client, tenant).await;
    assert_eq!(
        records[0].provider, "backup",
        "the probe succeeded and closed the circuit"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_sweeper_releases_a_reservation_whose_call_never_settled() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let settled = client
        .complete(ask(tenant, models::LOCAL, "a call that settles"))
        .await
        .expect("answer")
        .into_inner();
    let used = settled.usage.expect("usage").total_tokens;
    // A process that crashed after reserving: the reservation and its sweeper job, committed
    // together, and nothing after.
    let orphan = keel_ai_gateway::domain::CompletionId::new();
    let ttl = chrono::Duration::seconds(900);
    let admin = app.db.admin_pool().await;
    let mut tx = admin.begin().await.expect("tx");
    sqlx::query("SET LOCAL search_path = ai_gateway")
        .execute(&mut *tx)
        .await
        .expect("path");
    sqlx::query("INSERT INTO reservations (tenant_id, completion_id, tokens, created_at) VALUES ($1, $2, 500, $3)")
        .bind(tenant.as_uuid())
        .bind(orphan.as_uuid())
        .bind(app.clock.now())
        .execute(&mut *tx)
        .await
        .expect("reservation");
    sqlx::query("UPDATE quotas SET reserved_tokens = reserved_tokens + 500 WHERE tenant_id = $1")
        .bind(tenant.as_uuid())
        .execute(&mut *tx)
        .await
        .expect("reserve");
    let sweep = keel_ai_gateway::jobs::sweep_reservations(tenant, app.clock.now(), ttl);
    keel_kernel::jobs::schedule(&mut tx, sweep)
        .await
        .expect("schedule");
    tx.commit().await.expect("commit");
    assert_eq!(quota(&mut client, tenant).await.reserved_tokens, 500);
    assert_eq!(app.run_due_jobs().await, 0, "nothing is due before the TTL");
    app.clock.advance(ttl + ttl + chrono::Duration::seconds(1));
    assert!(app.run_due_jobs().await >= 1);
    let quota = quota(&mut client, tenant).await;
    assert_eq!((quota.reserved_tokens, quota.used_tokens), (0, used));
    app.stop().await;
}

#[tokio::test]
async fn usage_starts_again_from_zero_when_the_period_rolls_over() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    client
        .complete(ask(tenant, models::LOCAL, "this period"))
        .await
        .expect("answer");
    let before = quota(&mut client, tenant).await;
    assert!(before.used_tokens > 0);
    app.clock.advance(chrono::Duration::days(32));
    let after = quota(&mut client, tenant).await;
    assert_eq!(after.used_tokens, 0);
    assert!(
        after.period_start_time.expect("start").seconds
            >= before.period_end_time.expect("end").seconds
    );
    app.stop().await;
}

#[tokio::test]
async fn the_idempotency_key_header_makes_a_retry_free_like_request_id() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let keyed = || {
        let mut request = tonic::Request::new(ask(tenant, models::FAKE, "header keyed"));
        request.metadata_mut().insert(
            keel_kernel::idempotency::IDEMPOTENCY_KEY_HEADER,
            "header-key-1".parse().expect("ascii"),
        );
        request
    };
    let first = client.complete(keyed()).await.expect("first").into_inner();
    let again = client.complete(keyed()).await.expect("retry").into_inner();
    assert_eq!(first.id, again.id);
    assert_eq!(app.fake.request_count(), 1);
    app.stop().await;
}
