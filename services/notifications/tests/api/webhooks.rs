//! Outbound webhooks end to end: events published on JetStream reach a local endpoint, signed;
//! failures are retried on the schedule (the test clock stands in for the days), logged, and end
//! in the endpoint being disabled; replays; SSRF refusals; permissions and tenant isolation.
#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion

use base64::Engine;
use hmac::{Hmac, Mac};
use keel_kernel::TenantId;
use keel_kernel::auth::roles;
use keel_proto::notifications::v1 as pb;
use keel_webhooks::signature;
use sha2::Sha256;
use tonic::Code;

use crate::webhooks_support::{Receiver, WebhookApp, webhook_settings};

/// The Standard Webhooks reference algorithm, written out here rather than taken from the
/// service's crate: base64(HMAC-SHA256(key = base64-decoded secret after `whsec_`,
/// content = "{id}.{timestamp}.{body}")), sent as `v1,<signature>`.
fn reference_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", engine.encode(mac.finalize().into_bytes()))
}

fn header(received: &crate::webhooks_support::Received, name: &str) -> String {
    received.headers[name].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_event_reaches_the_endpoint_signed_and_failures_are_retried_on_the_schedule() {
    let app = WebhookApp::spawn().await;
    let tenant = TenantId::new();
    let receiver = Receiver::start().await;
    receiver.fail_next(&[500, 503]);
    let created = app
        .create_endpoint(tenant, &receiver.url(), &["delivery.*"])
        .await;
    let secret = created.secret.clone();
    assert!(secret.starts_with("whsec_"));
    let endpoint = created.endpoint.unwrap().endpoint_id;

    let event = app.task_created(tenant).await;
    // The first attempt is due at once: the service's own worker makes it.
    let first = receiver.wait_for(1).await;
    assert_eq!(first.len(), 1);

    // 5 s (+20 % jitter at most) later, the second; 5 min later, the third, which succeeds.
    app.advance(chrono::Duration::seconds(7)).await;
    assert_eq!(receiver.received().len(), 2);
    app.advance(chrono::Duration::minutes(6)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    app.advance(chrono::Duration::days(4)).await;
    assert_eq!(receiver.received().len(), 3, "nothing after the success");

    let id = header(&received[0], "webhook-id");
    for request in &received {
        assert_eq!(
            header(request, "webhook-id"),
            id,
            "one message id across retries"
        );
        let timestamp = header(request, "webhook-timestamp");
        assert_eq!(
            header(request, "webhook-signature"),
            reference_signature(&secret, &id, &timestamp, &request.body)
        );
        signature::verify(
            &[signature::WebhookSecret::parse(&secret).unwrap()],
            &id,
            &timestamp,
            &header(request, "webhook-signature"),
            &request.body,
            chrono::Utc::now().timestamp(),
            300,
        )
        .unwrap();
    }
    let body: serde_json::Value = serde_json::from_slice(&received[2].body).unwrap();
    assert_eq!(body["type"], "delivery.task.created");
    assert_eq!(body["data"]["title"], "Pour the foundations");

    let attempts = app.attempts(tenant, &endpoint).await;
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt_number, a.succeeded, a.status_code))
        .collect();
    assert_eq!(
        outcomes,
        vec![(1, false, 500), (2, false, 503), (3, true, 200)]
    );
    assert_eq!(attempts[0].response_excerpt, "receiver says 500");
    assert!(attempts[0].error.contains("500"));
    assert!(
        attempts
            .iter()
            .all(|a| a.message_id == id && a.trigger == "scheduled")
    );
    let _ = event;

    // A filtered-out event sends nothing.
    app.log
        .publish(
            "billing",
            "billing.plan.changed",
            &tenant.to_string(),
            1,
            &keel_proto::delivery::v1::TaskCreated::default(),
        )
        .await;
    app.task_created(TenantId::new()).await; // another tenant's event
    app.advance(chrono::Duration::seconds(1)).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    app.run_jobs().await;
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn a_failing_endpoint_is_disabled_with_an_event_and_can_be_replayed_once_enabled() {
    let mut settings = webhook_settings();
    settings.disable_after_failures = 3;
    settings.disable_after_failing_for_secs = 0;
    let app = WebhookApp::spawn_with(settings).await;
    let tenant = TenantId::new();
    let receiver = Receiver::start().await;
    receiver.always_answer(500);
    let created = app.create_endpoint(tenant, &receiver.url(), &[]).await;
    let endpoint = created.endpoint.unwrap().endpoint_id;
    let mut owner = app.owner(tenant);

    app.task_created(tenant).await;
    receiver.wait_for(1).await;
    app.advance(chrono::Duration::seconds(7)).await;
    app.advance(chrono::Duration::minutes(6)).await;
    assert_eq!(receiver.received().len(), 3);

    let disabled = app.log.of_type("notifications.endpoint.disabled", 1).await;
    let payload: pb::WebhookEndpointDisabled = keel_testkit::payload(&disabled[0]);
    assert_eq!(payload.endpoint_id, endpoint);
    assert_eq!(payload.consecutive_failures, 3);
    let shown = owner
        .get_webhook_endpoint(pb::GetWebhookEndpointRequest {
            tenant_id: tenant.to_string(),
            endpoint_id: endpoint.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!shown.enabled);
    assert!(
        shown.disabled_reason.contains("3 failed attempts"),
        "{}",
        shown.disabled_reason
    );

    // Disabled: the scheduled fourth attempt sends nothing; a replay is refused.
    app.advance(chrono::Duration::hours(1)).await;
    assert_eq!(receiver.received().len(), 3);
    let since = keel_kernel::grpc::timestamp(chrono::DateTime::UNIX_EPOCH);
    let replay = pb::ReplayWebhookMessagesRequest {
        tenant_id: tenant.to_string(),
        endpoint_id: endpoint.clone(),
        target: Some(pb::replay_webhook_messages_request::Target::Since(since)),
    };
    let refused = owner
        .replay_webhook_messages(replay.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);

    // Fixed and enabled again: everything that failed since then goes out once more.
    receiver.always_answer(200);
    let enabled = owner
        .update_webhook_endpoint(pb::UpdateWebhookEndpointRequest {
            tenant_id: tenant.to_string(),
            endpoint_id: endpoint.clone(),
            endpoint: Some(pb::WebhookEndpointUpdate {
                enabled: Some(true),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(enabled.enabled);
    assert_eq!(enabled.consecutive_failures, 0);
    let queued = owner
        .replay_webhook_messages(replay)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queued.queued, 1);
    app.run_jobs().await;
    receiver.wait_for(4).await;
    let attempts = app.attempts(tenant, &endpoint).await;
    let last = attempts.last().unwrap();
    assert!(last.succeeded);
    assert_eq!(last.trigger, "replay");
    assert_eq!(last.attempt_number, 4);
}

#[tokio::test]
async fn concurrent_replays_of_one_message_send_it_once() {
    let app = WebhookApp::spawn().await;
    let tenant = TenantId::new();
    let receiver = Receiver::start().await;
    let created = app.create_endpoint(tenant, &receiver.url(), &[]).await;
    let endpoint = created.endpoint.unwrap().endpoint_id;
    app.task_created(tenant).await;
    let first = receiver.wait_for(1).await;
    let message_id = header(&first[0], "webhook-id");
    app.run_jobs().await;

    let replays = (0..8).map(|_| {
        let client = app.owner(tenant);
        let request = pb::ReplayWebhookMessagesRequest {
            tenant_id: tenant.to_string(),
            endpoint_id: endpoint.clone(),
            target: Some(pb::replay_webhook_messages_request::Target::MessageId(
                message_id.clone(),
            )),
        };
        async move {
            let mut client = client;
            client
                .replay_webhook_messages(request)
                .await
                .unwrap()
                .into_inner()
                .queued
        }
    });
    let queued: i32 = futures::future::join_all(replays).await.into_iter().sum();
    assert_eq!(queued, 1, "one replay queued, the others found it waiting");
    app.run_jobs().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 2);
    assert_eq!(header(&receiver.received()[1], "webhook-id"), message_id);
}

#[tokio::test]
async fn private_destinations_are_refused_when_an_endpoint_is_created_or_changed() {
    let app = WebhookApp::spawn().await;
    let tenant = TenantId::new();
    let owner = app.owner(tenant);
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.8/hook",
        "http://[::1]/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",
        "ftp://example.com/hook",
    ] {
        let status = owner
            .clone()
            .create_webhook_endpoint(pb::CreateWebhookEndpointRequest {
                tenant_id: tenant.to_string(),
                endpoint: Some(pb::WebhookEndpointInput {
                    kind: pb::WebhookChannelKind::Slack as i32,
                    url: url.into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{url}");
        assert_eq!(
            keel_testkit::violated_fields(&status),
            vec!["endpoint.url"],
            "{url}"
        );
    }
    let receiver = Receiver::start().await;
    let endpoint = app
        .create_endpoint(tenant, &receiver.url(), &[])
        .await
        .endpoint
        .unwrap();
    let status = owner
        .clone()
        .update_webhook_endpoint(pb::UpdateWebhookEndpointRequest {
            tenant_id: tenant.to_string(),
            endpoint_id: endpoint.endpoint_id.clone(),
            endpoint: Some(pb::WebhookEndpointUpdate {
                url: Some("http://172.16.0.1/".into()),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = owner
        .clone()
        .create_webhook_endpoint(pb::CreateWebhookEndpointRequest {
            tenant_id: tenant.to_string(),
            endpoint: Some(pb::WebhookEndpointInput {
                kind: pb::WebhookChannelKind::Webhook as i32,
                url: receiver.url(),
                event_types: vec!["Billing!".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(
        keel_testkit::violated_fields(&status),
        vec!["endpoint.event_types[0]"]
    );
}

#[tokio::test]
async fn endpoints_are_managed_only_with_the_permission_and_only_in_their_tenant() {
    let app = WebhookApp::spawn().await;
    let ours = TenantId::new();
    let theirs = TenantId::new();
    let receiver = Receiver::start().await;
    let endpoint = app
        .create_endpoint(ours, &receiver.url(), &["billing.invoice.finalized"])
        .await
        .endpoint
        .unwrap();

    // A member without the permission, and another tenant's owner, get nothing.
    let member = app.client(&app.token(ours, roles::VIEWER));
    let denied = member
        .clone()
        .list_webhook_endpoints(pb::ListWebhookEndpointsRequest {
            tenant_id: ours.to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let other_owner = app.owner(theirs);
    let denied = other_owner
        .clone()
        .get_webhook_endpoint(pb::GetWebhookEndpointRequest {
            tenant_id: ours.to_string(),
            endpoint_id: endpoint.endpoint_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let hidden = other_owner
        .clone()
        .get_webhook_endpoint(pb::GetWebhookEndpointRequest {
            tenant_id: theirs.to_string(),
            endpoint_id: endpoint.endpoint_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let listed = other_owner
        .clone()
        .list_webhook_endpoints(pb::ListWebhookEndpointsRequest {
            tenant_id: theirs.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.endpoints.is_empty());

    // The owner lists, rotates (both secrets sign meanwhile), updates and deletes.
    let owner = app.owner(ours);
    let rotated = owner
        .clone()
        .rotate_webhook_secret(pb::RotateWebhookSecretRequest {
            tenant_id: ours.to_string(),
            endpoint_id: endpoint.endpoint_id.clone(),
            previous_valid_for_seconds: 3600,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rotated.secret.starts_with("whsec_"));
    assert!(
        rotated
            .endpoint
            .unwrap()
            .previous_secret_expires_at
            .is_some()
    );
    let updated = owner
        .clone()
        .update_webhook_endpoint(pb::UpdateWebhookEndpointRequest {
            tenant_id: ours.to_string(),
            endpoint_id: endpoint.endpoint_id.clone(),
            endpoint: Some(pb::WebhookEndpointUpdate {
                event_types: Some(pb::EventTypeFilter {
                    event_types: vec!["delivery.*".into()],
                }),
                description: Some("builds".into()),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.event_types, vec!["delivery.*"]);
    app.task_created(ours).await;
    let received = receiver.wait_for(1).await;
    let signatures = header(&received[0], "webhook-signature");
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    owner
        .clone()
        .delete_webhook_endpoint(pb::DeleteWebhookEndpointRequest {
            tenant_id: ours.to_string(),
            endpoint_id: endpoint.endpoint_id.clone(),
        })
        .await
        .unwrap();
    let gone = owner
        .clone()
        .get_webhook_endpoint(pb::GetWebhookEndpointRequest {
            tenant_id: ours.to_string(),
            endpoint_id: endpoint.endpoint_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    // Row-level security: the other tenant's transaction sees none of our webhook rows.
    let pool = keel_kernel::db::connect(
        "notifications-test",
        &app.db_config,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    for table in ["webhook_endpoints", "webhook_messages"] {
        let mut tx = keel_kernel::db::tenant_tx(&pool, theirs).await.unwrap();
        let (seen,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = $1"
        ))
        .bind(ours.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(seen, 0, "{table}");
    }
}
