//! `WebhookService`: endpoint management, the delivery log and replays, for
//! `notifications.webhook.manage` in the tenant.

use keel_kernel::grpc::{from_timestamp, timestamp};
use keel_kernel::{Caller, Error, TenantId, db};
use keel_proto::notifications::v1 as pb;
use keel_proto::notifications::v1::webhook_service_server::WebhookService;
use keel_webhooks::AttemptFailure;
use keel_webhooks::channel::validate_url;
use keel_webhooks::signature::WebhookSecret;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::jobs::Trigger;
use super::{MANAGE, SharedWebhooks, parse_webhook_id, repo, schedule_attempt, webhook_id};

/// The handler type of `WebhookService`.
pub struct Webhooks(pub SharedWebhooks);

const DEFAULT_ROTATION_OVERLAP_SECS: i32 = 24 * 3600;
const MAX_ROTATION_OVERLAP_SECS: i32 = 7 * 24 * 3600;
const MAX_EVENT_TYPES: usize = 50;
const MAX_DESCRIPTION_CHARS: usize = 200;

fn kind_name(kind: i32) -> Result<&'static str, Error> {
    match pb::WebhookChannelKind::try_from(kind) {
        Ok(pb::WebhookChannelKind::Webhook) => Ok("webhook"),
        Ok(pb::WebhookChannelKind::Slack) => Ok("slack"),
        Ok(pb::WebhookChannelKind::Telegram) => Ok("telegram"),
        _ => Err(Error::invalid(
            "endpoint.kind",
            "must be WEBHOOK, SLACK or TELEGRAM",
        )),
    }
}

fn kind_proto(kind: &str) -> pb::WebhookChannelKind {
    match kind {
        "webhook" => pb::WebhookChannelKind::Webhook,
        "slack" => pb::WebhookChannelKind::Slack,
        "telegram" => pb::WebhookChannelKind::Telegram,
        _ => pb::WebhookChannelKind::Unspecified,
    }
}

fn to_proto(tenant: TenantId, endpoint: &repo::Endpoint) -> pb::WebhookEndpoint {
    pb::WebhookEndpoint {
        endpoint_id: endpoint.id.to_string(),
        tenant_id: tenant.to_string(),
        kind: kind_proto(&endpoint.kind) as i32,
        url: endpoint.url.clone(),
        description: endpoint.description.clone(),
        event_types: endpoint.event_types.clone(),
        enabled: endpoint.enabled,
        disabled_reason: endpoint.disabled_reason.clone(),
        telegram_chat_id: endpoint.telegram_chat_id.clone().unwrap_or_default(),
        consecutive_failures: endpoint.consecutive_failures,
        previous_secret_expires_at: endpoint.previous_secret_expires_at.map(timestamp),
        created_at: Some(timestamp(endpoint.created_at)),
        updated_at: Some(timestamp(endpoint.updated_at)),
    }
}

/// `billing.invoice.finalized` or `billing.*` (segments of lowercase letters and `_`).
fn parse_event_types(field: &str, types: &[String]) -> Result<Vec<String>, Error> {
    if types.len() > MAX_EVENT_TYPES {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_EVENT_TYPES} event types"),
        ));
    }
    let segment_ok =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    let mut parsed = Vec::with_capacity(types.len());
    for (index, entry) in types.iter().enumerate() {
        let entry = entry.trim();
        let segments: Vec<&str> = entry.split('.').collect();
        let valid = match segments.as_slice() {
            [context, "*"] => segment_ok(context),
            [a, b, "*"] => segment_ok(a) && segment_ok(b),
            [a, b, c] => segment_ok(a) && segment_ok(b) && segment_ok(c),
            _ => false,
        };
        if !valid {
            return Err(Error::invalid(
                format!("{field}[{index}]"),
                "must be an event type (context.aggregate.verb) or a prefix ending in .*",
            ));
        }
        if !parsed.iter().any(|known: &String| known == entry) {
            parsed.push(entry.to_owned());
        }
    }
    Ok(parsed)
}

fn parse_description(field: &str, text: &str) -> Result<String, Error> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(text.to_owned())
}

fn parse_uuid(field: &str, text: &str) -> Result<Uuid, Error> {
    if text.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    Uuid::parse_str(text).map_err(|_| Error::invalid(field, "is not a valid id"))
}

impl Webhooks {
    /// Checks the URL's shape, then where it resolves (SSRF).
    async fn check_url(&self, field: &str, url: &str) -> Result<String, Error> {
        let parsed =
            validate_url("url", url.trim()).map_err(|err| Error::invalid(field, err.reason))?;
        match self.0.sender.check_url(parsed.as_str()).await {
            Ok(_) => Ok(parsed.to_string()),
            Err(failure @ AttemptFailure::Refused { .. }) => {
                Err(Error::invalid(field, failure.to_string()))
            }
            Err(failure) => Err(Error::invalid(field, failure.to_string())),
        }
    }

    async fn open(&self, caller: &Caller, tenant_id: &str) -> Result<db::TenantTx, Error> {
        let tenant = TenantId::parse_field("tenant_id", tenant_id)?;
        let tenant = caller.tenant_with(tenant, MANAGE)?;
        db::tenant_tx(&self.0.db, tenant).await
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn create(
        &self,
        caller: &Caller,
        request: pb::CreateWebhookEndpointRequest,
    ) -> Result<pb::CreateWebhookEndpointResponse, Error> {
        let input = request
            .endpoint
            .ok_or_else(|| Error::invalid("endpoint", "is required"))?;
        let kind = kind_name(input.kind)?;
        let description = parse_description("endpoint.description", &input.description)?;
        let event_types = parse_event_types("endpoint.event_types", &input.event_types)?;
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        caller.tenant_with(tenant, MANAGE)?;
        let (url, bot_token, chat_id) = if kind == "telegram" {
            let channel = keel_webhooks::Channel::Telegram {
                api_base: self.0.settings.telegram_api_base.clone(),
                bot_token: input.telegram_bot_token.trim().to_owned(),
                chat_id: input.telegram_chat_id.trim().to_owned(),
            };
            channel
                .validate()
                .map_err(|err| Error::invalid(format!("endpoint.{}", err.field), err.reason))?;
            (
                String::new(),
                Some(input.telegram_bot_token.trim().to_owned()),
                Some(input.telegram_chat_id.trim().to_owned()),
            )
        } else {
            (
                self.check_url("endpoint.url", &input.url).await?,
                None,
                None,
            )
        };
        let secret = (kind == "webhook").then(|| WebhookSecret::generate().expose());
        let mut tx = self.open(caller, &request.tenant_id).await?;
        let endpoint = repo::insert_endpoint(
            &mut tx,
            &repo::NewEndpoint {
                id: Uuid::now_v7(),
                kind,
                url: &url,
                description: &description,
                event_types: &event_types,
                secret: secret.as_deref(),
                telegram_bot_token: bot_token.as_deref(),
                telegram_chat_id: chat_id.as_deref(),
            },
            self.0.clock.now(),
        )
        .await?;
        tx.commit().await?;
        Ok(pb::CreateWebhookEndpointResponse {
            endpoint: Some(to_proto(tenant, &endpoint)),
            secret: secret.unwrap_or_default(),
        })
    }

    async fn list(
        &self,
        caller: &Caller,
        request: pb::ListWebhookEndpointsRequest,
    ) -> Result<pb::ListWebhookEndpointsResponse, Error> {
        let mut tx = self.open(caller, &request.tenant_id).await?;
        let tenant = tx.tenant();
        let endpoints = repo::endpoints(&mut tx).await?;
        tx.commit().await?;
        Ok(pb::ListWebhookEndpointsResponse {
            endpoints: endpoints.iter().map(|e| to_proto(tenant, e)).collect(),
        })
    }

    async fn get(
        &self,
        caller: &Caller,
        request: pb::GetWebhookEndpointRequest,
    ) -> Result<pb::WebhookEndpoint, Error> {
        let id = parse_uuid("endpoint_id", &request.endpoint_id)?;
        let mut tx = self.open(caller, &request.tenant_id).await?;
        let tenant = tx.tenant();
        let endpoint = repo::endpoint(&mut tx, id, false)
            .await?
            .ok_or_else(|| Error::not_found("webhook endpoint", id))?;
        tx.commit().await?;
        Ok(to_proto(tenant, &endpoint))
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn update(
        &self,
        caller: &Caller,
        request: pb::UpdateWebhookEndpointRequest,
    ) -> Result<pb::WebhookEndpoint, Error> {
        let id = parse_uuid("endpoint_id", &request.endpoint_id)?;
        let change = request
            .endpoint
            .ok_or_else(|| Error::invalid("endpoint", "is required"))?;
        let description = change
            .description
            .as_deref()
            .map(|text| parse_description("endpoint.description", text))
            .transpose()?;
        let event_types = change
            .event_types
            .as_ref()
            .map(|filter| parse_event_types("endpoint.event_types", &filter.event_types))
            .transpose()?;
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        caller.tenant_with(tenant, MANAGE)?;
        let url = match change.url.as_deref() {
            Some(url) => Some(self.check_url("endpoint.url", url).await?),
            None => None,
        };
        let mut tx = self.open(caller, &request.tenant_id).await?;
        let mut endpoint = repo::endpoint(&mut tx, id, true)
            .await?
            .ok_or_else(|| Error::not_found("webhook endpoint", id))?;
        if let Some(url) = url {
            if endpoint.kind == "telegram" {
                return Err(Error::invalid(
                    "endpoint.url",
                    "a Telegram endpoint has no URL",
                ));
            }
            endpoint.url = url;
        }
        if let Some(description) = description {
            endpoint.description = description;
        }
        if let Some(event_types) = event_types {
            endpoint.event_types = event_types;
        }
        match change.enabled {
            Some(true) if !endpoint.enabled => {
                endpoint.enabled = true;
                endpoint.disabled_reason.clear();
                endpoint.consecutive_failures = 0;
                endpoint.failing_since = None;
            }
            Some(false) if endpoint.enabled => {
                endpoint.enabled = false;
                endpoint.disabled_reason = "disabled by a user".to_owned();
            }
            _ => {}
        }
        let saved = repo::save_endpoint(&mut tx, &endpoint, self.0.clock.now()).await?;
        tx.commit().await?;
        Ok(to_proto(tenant, &saved))
    }

    async fn delete(
        &self,
        caller: &Caller,
        request: pb::DeleteWebhookEndpointRequest,
    ) -> Result<pb::DeleteWebhookEndpointResponse, Error> {
        let id = parse_uuid("endpoint_id", &request.endpoint_id)?;
        let mut tx = self.open(caller, &request.tenant_id).await?;
        if !repo::delete_endpoint(&mut tx, id).await? {
            return Err(Error::not_found("webhook endpoint", id));
        }
        tx.commit().await?;
        Ok(pb::DeleteWebhookEndpointResponse {})
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn rotate(
        &self,
        caller: &Caller,
        request: pb::RotateWebhookSecretRequest,
    ) -> Result<pb::RotateWebhookSecretResponse, Error> {
        let id = parse_uuid("endpoint_id", &request.endpoint_id)?;
        let overlap = match request.previous_valid_for_seconds {
            0 => DEFAULT_ROTATION_OVERLAP_SECS,
            secs if (1..=MAX_ROTATION_OVERLAP_SECS).contains(&secs) => secs,
            _ => {
                return Err(Error::invalid(
                    "previous_valid_for_seconds",
                    format!("must be between 0 and {MAX_ROTATION_OVERLAP_SECS}"),
                ));
            }
        };
        let mut tx = self.open(caller, &request.tenant_id).await?;
        let tenant = tx.tenant();
        let mut endpoint = repo::endpoint(&mut tx, id, true)
            .await?
            .ok_or_else(|| Error::not_found("webhook endpoint", id))?;
        if endpoint.kind != "webhook" {
            return Err(Error::failed_precondition(format!(
                "a {} endpoint has no signing secret",
                endpoint.kind
            )));
        }
        let now = self.0.clock.now();
        let secret = WebhookSecret::generate().expose();
        endpoint.previous_secret = endpoint.secret.replace(secret.clone());
        endpoint.previous_secret_expires_at = Some(now + chrono::Duration::seconds(overlap.into()));
        let saved = repo::save_endpoint(&mut tx, &endpoint, now).await?;
        tx.commit().await?;
        Ok(pb::RotateWebhookSecretResponse {
            endpoint: Some(to_proto(tenant, &saved)),
            secret,
        })
    }

    async fn attempts(
        &self,
        caller: &Caller,
        request: pb::ListWebhookAttemptsRequest,
    ) -> Result<pb::ListWebhookAttemptsResponse, Error> {
        let id = parse_uuid("endpoint_id", &request.endpoint_id)?;
        let message = if request.message_id.is_empty() {
            None
        } else {
            Some(parse_webhook_id("message_id", &request.message_id)?)
        };
        let limit = match request.page_size {
            size if size < 0 => return Err(Error::invalid("page_size", "must not be negative")),
            0 => 50,
            size => i64::from(size.min(200)),
        };
        let mut tx = self.open(caller, &request.tenant_id).await?;
        if repo::endpoint(&mut tx, id, false).await?.is_none() {
            return Err(Error::not_found("webhook endpoint", id));
        }
        let rows = repo::attempts(&mut tx, id, message, limit).await?;
        tx.commit().await?;
        Ok(pb::ListWebhookAttemptsResponse {
            attempts: rows
                .into_iter()
                .map(|row| pb::WebhookAttempt {
                    attempt_id: row.id.to_string(),
                    message_id: webhook_id(row.message_id),
                    event_type: row.event_type,
                    attempt_number: row.attempt_number,
                    attempted_at: Some(timestamp(row.attempted_at)),
                    succeeded: row.succeeded,
                    status_code: row.status_code.unwrap_or_default(),
                    latency_ms: row.latency_ms,
                    response_excerpt: row.response_excerpt,
                    error: row.error,
                    trigger: row.trigger,
                })
                .collect(),
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn replay(
        &self,
        caller: &Caller,
        request: pb::ReplayWebhookMessagesRequest,
    ) -> Result<pb::ReplayWebhookMessagesResponse, Error> {
        use pb::replay_webhook_messages_request::Target;
        let id = parse_uuid("endpoint_id", &request.endpoint_id)?;
        let target = match &request.target {
            Some(Target::MessageId(message)) => {
                Target::MessageId(parse_webhook_id("message_id", message)?.to_string())
            }
            Some(Target::Since(since)) => {
                from_timestamp("since", since)?;
                Target::Since(*since)
            }
            None => {
                return Err(Error::invalid("target", "set message_id or since"));
            }
        };
        let mut tx = self.open(caller, &request.tenant_id).await?;
        let endpoint = repo::endpoint(&mut tx, id, false)
            .await?
            .ok_or_else(|| Error::not_found("webhook endpoint", id))?;
        if !endpoint.enabled {
            return Err(Error::failed_precondition(
                "the endpoint is disabled: enable it before replaying",
            ));
        }
        let messages = match target {
            Target::MessageId(message) => {
                vec![Uuid::parse_str(&message).map_err(Error::internal)?]
            }
            Target::Since(since) => {
                repo::failed_since(&mut tx, id, from_timestamp("since", &since)?).await?
            }
        };
        let now = self.0.clock.now();
        let mut queued = 0;
        for message in messages {
            let Some(mut delivery) = repo::lock_delivery(&mut tx, message, id).await? else {
                return Err(Error::not_found("webhook message", webhook_id(message)));
            };
            if delivery.state == "pending" {
                continue; // already waiting for an attempt: a second replay adds nothing
            }
            delivery.state = "pending".to_owned();
            delivery.run += 1;
            delivery.run_failures = 0;
            repo::update_delivery(&mut tx, &delivery, Some(now), now).await?;
            schedule_attempt(&mut tx, message, id, delivery.run, 1, Trigger::Replay, now).await?;
            queued += 1;
        }
        tx.commit().await?;
        Ok(pb::ReplayWebhookMessagesResponse { queued })
    }
}

#[tonic::async_trait]
impl WebhookService for Webhooks {
    async fn create_webhook_endpoint(
        &self,
        request: Request<pb::CreateWebhookEndpointRequest>,
    ) -> Result<Response<pb::CreateWebhookEndpointResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.create(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_webhook_endpoints(
        &self,
        request: Request<pb::ListWebhookEndpointsRequest>,
    ) -> Result<Response<pb::ListWebhookEndpointsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list(&caller, request.into_inner()).await?,
        ))
    }

    async fn get_webhook_endpoint(
        &self,
        request: Request<pb::GetWebhookEndpointRequest>,
    ) -> Result<Response<pb::WebhookEndpoint>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.get(&caller, request.into_inner()).await?,
        ))
    }

    async fn update_webhook_endpoint(
        &self,
        request: Request<pb::UpdateWebhookEndpointRequest>,
    ) -> Result<Response<pb::WebhookEndpoint>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.update(&caller, request.into_inner()).await?,
        ))
    }

    async fn delete_webhook_endpoint(
        &self,
        request: Request<pb::DeleteWebhookEndpointRequest>,
    ) -> Result<Response<pb::DeleteWebhookEndpointResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.delete(&caller, request.into_inner()).await?,
        ))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::RotateWebhookSecretResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.rotate(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_webhook_attempts(
        &self,
        request: Request<pb::ListWebhookAttemptsRequest>,
    ) -> Result<Response<pb::ListWebhookAttemptsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.attempts(&caller, request.into_inner()).await?,
        ))
    }

    async fn replay_webhook_messages(
        &self,
        request: Request<pb::ReplayWebhookMessagesRequest>,
    ) -> Result<Response<pb::ReplayWebhookMessagesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.replay(&caller, request.into_inner()).await?,
        ))
    }
}
