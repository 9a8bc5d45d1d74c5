//! The tenant's outbound webhooks (proto `notifications.v1.WebhookService`).
//!
//! - Every event of a tenant, from every source context, is offered to the tenant's enabled
//!   endpoints whose filter matches its type (`consumer.rs`, own durable consumers named
//!   `webhooks-<context>`, so webhooks receive every event, not only the ones that notify a
//!   person). In the event's inbox transaction it becomes one message (the `webhook-id`), one
//!   delivery per endpoint and one attempt job per delivery: a redelivered event adds nothing.
//! - An attempt (`jobs.rs`, durable kernel job `notifications.webhook.attempt`) sends with
//!   [`keel_webhooks::Sender`] (SSRF-checked, no redirects), logs the attempt, and on failure
//!   schedules the next one by [`keel_webhooks::schedule`]; a run of failures disables the
//!   endpoint and publishes `notifications.endpoint.disabled`.
//! - Management over gRPC/REST (`grpc.rs`) for `notifications.webhook.manage`.

pub mod consumer;
pub mod grpc;
pub mod jobs;
pub mod repo;
pub mod settings;

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use keel_kernel::clock::SharedClock;
use keel_kernel::consumer::Event;
use keel_kernel::db::TenantTx;
use keel_kernel::jobs::{NewJob, schedule};
use keel_kernel::outbox::{NewEvent, Outbox};
use keel_kernel::{Actor, Error, TenantId};
use keel_proto::notifications::v1 as pb;
use keel_webhooks::signature::WebhookSecret;
use keel_webhooks::{Channel, Sender};
use prost_reflect::{DescriptorPool, DynamicMessage};
use sqlx::PgPool;
use uuid::Uuid;

pub use settings::WebhookSettings;

pub const MANAGE: &str = "notifications.webhook.manage";
pub const ENDPOINT_DISABLED: &str = "notifications.endpoint.disabled";

/// What the consumer, the jobs and the handlers share; built once in `app.rs`.
pub struct WebhookContext {
    pub db: PgPool,
    pub outbox: Outbox,
    pub clock: SharedClock,
    pub sender: Sender,
    pub settings: WebhookSettings,
}

pub type SharedWebhooks = Arc<WebhookContext>;

impl WebhookContext {
    pub fn new(
        db: PgPool,
        outbox: Outbox,
        clock: SharedClock,
        settings: WebhookSettings,
    ) -> Result<SharedWebhooks, Error> {
        let sender_config = settings
            .sender_config()
            .map_err(|err| Error::internal(anyhow::anyhow!("{err}")))?;
        let sender = Sender::new(sender_config).map_err(Error::internal)?;
        Ok(Arc::new(WebhookContext {
            db,
            outbox,
            clock,
            sender,
            settings,
        }))
    }
}

/// Registers the webhooks' consumers and attempt job on the platform (called by `app.rs`).
pub fn wire(platform: &mut keel_kernel::app::Platform<crate::Settings>, webhooks: &SharedWebhooks) {
    for (name, subjects) in consumer::SOURCES {
        platform.consume(
            name,
            subjects,
            Arc::new(consumer::TenantEvents {
                webhooks: webhooks.clone(),
            }),
        );
    }
    platform.job(
        jobs::ATTEMPT,
        Arc::new(jobs::AttemptHandler {
            webhooks: webhooks.clone(),
        }),
    );
}

/// The `webhook-id` of a message: stable across retries and replays.
pub fn webhook_id(message: Uuid) -> String {
    format!("msg_{}", message.simple())
}

/// The message id inside a `webhook-id` (VALIDATION naming `field` otherwise).
pub fn parse_webhook_id(field: &str, text: &str) -> Result<Uuid, Error> {
    text.strip_prefix("msg_")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| Error::invalid(field, "is not a message id (msg_...)"))
}

/// Whether `filter` (exact types, or `<prefix>.*`; empty: all) takes `event_type`.
pub fn filter_matches(filter: &[String], event_type: &str) -> bool {
    filter.is_empty()
        || filter.iter().any(|entry| match entry.strip_suffix(".*") {
            Some(prefix) => event_type
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.')),
            None => entry == event_type,
        })
}

/// The channel an endpoint row describes, with the secrets valid at `now`.
pub fn channel_of(
    endpoint: &repo::Endpoint,
    settings: &WebhookSettings,
    now: DateTime<Utc>,
) -> Result<Channel, Error> {
    let broken = |what: &str| {
        Error::internal(anyhow::anyhow!(
            "webhook endpoint {} has no {what}",
            endpoint.id
        ))
    };
    Ok(match endpoint.kind.as_str() {
        "webhook" => {
            let mut secrets = Vec::with_capacity(2);
            let current = endpoint.secret.as_deref().ok_or_else(|| broken("secret"))?;
            secrets.push(WebhookSecret::parse(current).map_err(Error::internal)?);
            if let (Some(previous), Some(until)) = (
                endpoint.previous_secret.as_deref(),
                endpoint.previous_secret_expires_at,
            ) && until > now
            {
                secrets.push(WebhookSecret::parse(previous).map_err(Error::internal)?);
            }
            Channel::Webhook {
                url: endpoint.url.clone(),
                secrets,
            }
        }
        "slack" => Channel::Slack {
            url: endpoint.url.clone(),
        },
        "telegram" => Channel::Telegram {
            api_base: settings.telegram_api_base.clone(),
            bot_token: endpoint
                .telegram_bot_token
                .clone()
                .ok_or_else(|| broken("bot token"))?,
            chat_id: endpoint
                .telegram_chat_id
                .clone()
                .ok_or_else(|| broken("chat id"))?,
        },
        other => return Err(broken(&format!("known kind (has {other:?})"))),
    })
}

/// Every proto message the platform knows, to turn event payloads into JSON.
fn descriptors() -> Result<&'static DescriptorPool, Error> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(keel_proto::FILE_DESCRIPTOR_SET).map_err(|err| err.to_string())
    })
    .as_ref()
    .map_err(|err| Error::internal(anyhow::anyhow!("descriptor set: {err}")))
}

/// The event's payload in the proto JSON mapping (what a webhook receiver gets as `data`).
pub fn payload_json(event: &Event) -> Result<serde_json::Value, Error> {
    let Some(any) = event.envelope.payload.as_ref() else {
        return Ok(serde_json::json!({}));
    };
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let Some(descriptor) = descriptors()?.get_message_by_name(name) else {
        return Err(Error::invalid(
            "payload",
            format!("unknown payload type {name:?}"),
        ));
    };
    let message = DynamicMessage::decode(descriptor, any.value.as_slice())
        .map_err(|err| Error::invalid("payload", format!("does not decode: {err}")))?;
    serde_json::to_value(&message).map_err(Error::internal)
}

/// The fields of an event a webhook message keeps.
pub struct EventFacts {
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub payload: serde_json::Value,
    pub summary: String,
}

impl EventFacts {
    pub fn of(event: &Event) -> Result<EventFacts, Error> {
        let envelope = &event.envelope;
        let event_id = Uuid::parse_str(&envelope.event_id)
            .map_err(|_| Error::invalid("event_id", "is not a UUID"))?;
        let occurred_at = match &envelope.occurred_at {
            Some(at) => keel_kernel::grpc::from_timestamp("occurred_at", at)?,
            None => Utc::now(),
        };
        Ok(EventFacts {
            event_id,
            event_type: envelope.event_type.clone(),
            occurred_at,
            payload: payload_json(event)?,
            summary: format!(
                "{}: {} {}",
                envelope.event_type, envelope.aggregate_type, envelope.aggregate_id
            ),
        })
    }
}

/// Turns one event into a message for every matching enabled endpoint of the tenant, with an
/// attempt job each, in `tx`. Nothing when no endpoint wants it or the event has a message.
pub async fn enqueue(
    tx: &mut TenantTx,
    facts: &EventFacts,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let endpoints: Vec<repo::Endpoint> = repo::endpoints(tx)
        .await?
        .into_iter()
        .filter(|endpoint| {
            endpoint.enabled && filter_matches(&endpoint.event_types, &facts.event_type)
        })
        .collect();
    if endpoints.is_empty() {
        return Ok(0);
    }
    let new = repo::NewMessage {
        id: Uuid::now_v7(),
        event_id: facts.event_id,
        event_type: &facts.event_type,
        payload: &facts.payload,
        summary: &facts.summary,
        occurred_at: facts.occurred_at,
    };
    let Some(message) = repo::insert_message(tx, &new, now).await? else {
        return Ok(0);
    };
    for endpoint in &endpoints {
        repo::insert_delivery(tx, message, endpoint.id, now).await?;
        schedule_attempt(
            tx,
            message,
            endpoint.id,
            1,
            1,
            jobs::Trigger::Scheduled,
            now,
        )
        .await?;
    }
    Ok(endpoints.len())
}

/// Schedules the `number`-th attempt of `run` of a delivery at `at`.
pub async fn schedule_attempt(
    tx: &mut TenantTx,
    message: Uuid,
    endpoint: Uuid,
    run: i32,
    number: i32,
    trigger: jobs::Trigger,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let tenant: TenantId = tx.tenant();
    let job = NewJob::new(
        jobs::ATTEMPT,
        format!("{message}:{endpoint}:{run}:{number}"),
        at,
    )
    .tenant(tenant)
    .payload(&jobs::AttemptJob {
        message_id: message,
        endpoint_id: endpoint,
        run,
        trigger,
    })?;
    schedule(tx, job).await?;
    Ok(())
}

pub fn endpoint_disabled(
    tenant: TenantId,
    endpoint: Uuid,
    reason: &str,
    consecutive_failures: i32,
) -> Result<NewEvent, Error> {
    let payload = pb::WebhookEndpointDisabled {
        endpoint_id: endpoint.to_string(),
        tenant_id: tenant.to_string(),
        reason: reason.to_owned(),
        consecutive_failures,
    };
    Ok(NewEvent::new(ENDPOINT_DISABLED, endpoint, &payload)?
        .tenant(tenant)
        .version(i64::from(consecutive_failures))
        .actor(&Actor::system("notifications")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_exact_types_and_whole_contexts() {
        let filter = vec!["billing.*".to_owned(), "tenancy.member.added".to_owned()];
        assert!(filter_matches(&filter, "billing.invoice.finalized"));
        assert!(filter_matches(&filter, "tenancy.member.added"));
        assert!(!filter_matches(&filter, "tenancy.member.removed"));
        assert!(!filter_matches(&filter, "billingx.invoice.finalized"));
        assert!(filter_matches(&[], "anything.at.all"));
    }

    #[test]
    fn webhook_ids_round_trip() {
        let id = Uuid::now_v7();
        assert_eq!(parse_webhook_id("message_id", &webhook_id(id)).unwrap(), id);
        assert!(parse_webhook_id("message_id", "nope").is_err());
    }
}
