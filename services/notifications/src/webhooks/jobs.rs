//! `notifications.webhook.attempt`: one attempt of one delivery, as a durable kernel job keyed
//! `<message>:<endpoint>:<run>:<attempt>`. It runs with the delivery's row locked, so attempts
//! and replays of one delivery take turns, and a job of a run that a replay superseded, or of a
//! delivery that already ended, does nothing. The HTTP request is made inside the job's
//! transaction: if that transaction then fails to commit, the job runs again and the endpoint
//! gets the same `webhook-id` twice, which receivers deduplicate by (at-least-once delivery).

use chrono::Utc;
use futures::future::BoxFuture;
use keel_kernel::Error;
use keel_kernel::jobs::{Job, JobHandler, JobTx};
use keel_webhooks::OutboundMessage;
use keel_webhooks::schedule::{retry_delay_jittered, should_disable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{SharedWebhooks, channel_of, endpoint_disabled, repo, schedule_attempt, webhook_id};

pub const ATTEMPT: &str = "notifications.webhook.attempt";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Scheduled,
    Replay,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "scheduled",
            Trigger::Replay => "replay",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptJob {
    pub message_id: Uuid,
    pub endpoint_id: Uuid,
    pub run: i32,
    pub trigger: Trigger,
}

pub struct AttemptHandler {
    pub webhooks: SharedWebhooks,
}

impl AttemptHandler {
    async fn attempt(&self, tx: &mut JobTx, job: &Job) -> Result<(), Error> {
        let attempt: AttemptJob = job.payload()?;
        let context = &self.webhooks;
        let tx = tx.tenant()?;
        let tenant = tx.tenant();
        let now = context.clock.now();
        let Some(mut delivery) =
            repo::lock_delivery(tx, attempt.message_id, attempt.endpoint_id).await?
        else {
            return Ok(()); // the endpoint was deleted
        };
        if delivery.state != "pending" || delivery.run != attempt.run {
            return Ok(());
        }
        let Some(endpoint) = repo::endpoint(tx, attempt.endpoint_id, false).await? else {
            return Ok(());
        };
        if !endpoint.enabled {
            // Kept for a replay once the endpoint is enabled again.
            delivery.state = "failed".to_owned();
            repo::update_delivery(tx, &delivery, None, now).await?;
            return Ok(());
        }
        let message = repo::message(tx, attempt.message_id)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("delivery without its message")))?;
        let channel = channel_of(&endpoint, &context.settings, now)?;
        let outbound = OutboundMessage {
            id: webhook_id(message.id),
            event_type: message.event_type.clone(),
            occurred_at: message.occurred_at,
            data: message.payload.clone(),
            summary: message.summary.clone(),
        };
        // Signed with the wall clock: the receiver checks the timestamp against its own clock.
        let request = channel.prepare(&outbound, Utc::now().timestamp());
        let result = context.sender.send(&request).await;

        delivery.attempts += 1;
        let error = result
            .failure
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        repo::insert_attempt(
            tx,
            &repo::NewAttempt {
                message_id: message.id,
                endpoint_id: endpoint.id,
                attempt_number: delivery.attempts,
                trigger: attempt.trigger.as_str(),
                attempted_at: now,
                succeeded: result.succeeded(),
                status_code: result.status.map(i32::from),
                latency_ms: i64::try_from(result.latency.as_millis()).unwrap_or(i64::MAX),
                response_excerpt: &result.response_excerpt,
                error: &error,
            },
        )
        .await?;
        if result.succeeded() {
            delivery.state = "succeeded".to_owned();
            repo::update_delivery(tx, &delivery, None, now).await?;
            repo::record_endpoint_success(tx, endpoint.id).await?;
            return Ok(());
        }

        delivery.run_failures += 1;
        let failures = u32::try_from(delivery.run_failures).unwrap_or(u32::MAX);
        let next = retry_delay_jittered(failures)
            .and_then(|delay| chrono::Duration::from_std(delay).ok())
            .map(|delay| now + delay);
        match next {
            Some(at) => {
                schedule_attempt(
                    tx,
                    message.id,
                    endpoint.id,
                    delivery.run,
                    delivery.run_failures + 1,
                    Trigger::Scheduled,
                    at,
                )
                .await?;
            }
            None => delivery.state = "failed".to_owned(),
        }
        repo::update_delivery(tx, &delivery, next, now).await?;

        let (in_a_row, since) = repo::record_endpoint_failure(tx, endpoint.id, now).await?;
        let failing_for = (now - since).to_std().unwrap_or_default();
        let policy = context.settings.disable_policy();
        if should_disable(&policy, u32::try_from(in_a_row).unwrap_or(0), failing_for) {
            let reason = format!(
                "{in_a_row} failed attempts in a row since {}; last: {error}",
                since.to_rfc3339()
            );
            if repo::disable_endpoint(tx, endpoint.id, &reason, now).await? {
                tracing::warn!(endpoint = %endpoint.id, %reason, "webhook endpoint disabled");
                let event = endpoint_disabled(tenant, endpoint.id, &reason, in_a_row)?;
                context.outbox.enqueue(tx, event).await?;
            }
        }
        Ok(())
    }
}

impl JobHandler for AttemptHandler {
    fn run<'a>(&'a self, tx: &'a mut JobTx, job: &'a Job) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.attempt(tx, job))
    }
}
