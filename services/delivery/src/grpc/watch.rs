//! `WatchTasks`: a project's task changes as they commit, resumable without gaps.
//!
//! The truth is the project's change log (`task_changes`), written in each change's transaction
//! with a gapless per-project sequence whose row lock orders commits. JetStream feeds the live
//! part: an ordered consumer on delivery's own `events.delivery.task.>` (so any replica serves
//! any watcher, whichever replica made the change) wakes the stream when one of the tenant's task
//! events is published, and the stream then sends the log after the last sequence it sent. A
//! resume (`after_event_id` or the gateway's `last-event-id`) starts from that event's sequence,
//! so a reconnect, or a restart of every replica, loses nothing and repeats nothing.

use std::time::Duration;

use async_nats::jetstream::consumer;
use futures::StreamExt;
use keel_kernel::db;
use keel_kernel::grpc::timestamp;
use keel_kernel::{Caller, Error, TenantId};
use keel_proto::delivery::v1 as pb;
use keel_proto::events::v1::EventEnvelope;
use prost::Message;
use tokio::sync::mpsc;
use tonic::Status;

use super::delivery::TaskEvents;
use super::{Delivery, Shared};
use crate::domain::{ProjectId, permissions};
use crate::repo;
use crate::repo::changes::Change;

/// The metadata the gateway forwards the SSE `Last-Event-ID` header as.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// How many changes one read of the log sends at most.
const BATCH: i64 = 200;
/// The log is read this often even without a JetStream wake-up (a missed message, NATS down).
const FALLBACK_POLL: Duration = Duration::from_secs(2);
/// Changes buffered for a slow client before the stream waits for it.
const BUFFER: usize = 64;

impl Delivery {
    pub(super) async fn watch(
        &self,
        caller: &Caller,
        request: pb::WatchTasksRequest,
        last_event_id: &str,
    ) -> Result<TaskEvents, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::TASK_READ)?;
        let project = ProjectId::parse_field("project_id", &request.project_id)?;
        let resume = match (request.after_event_id.as_str(), last_event_id) {
            ("", "") => None,
            ("", header) => Some((LAST_EVENT_ID, header)),
            (field, _) => Some(("after_event_id", field)),
        };
        let resume = resume
            .map(|(field, value)| {
                uuid::Uuid::try_parse(value)
                    .map(|id| (field, id))
                    .map_err(|_| Error::invalid(field, "is not an event id"))
            })
            .transpose()?;
        // Follow JetStream before reading the log, so a change committed in between is seen.
        let live = follow(&self.0).await;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        repo::projects::get(&mut tx, project).await?;
        let start = match resume {
            Some((field, id)) => repo::changes::sequence_of(&mut tx, project, id)
                .await?
                .ok_or_else(|| {
                    Error::not_found("event", id).with_cause(anyhow::anyhow!("{field}"))
                })?,
            None => repo::changes::last(&mut tx, project).await?,
        };
        tx.commit().await?;
        let (sender, receiver) = mpsc::channel(BUFFER);
        tokio::spawn(stream_changes(
            self.0.clone(),
            tenant,
            project,
            start,
            live,
            sender,
        ));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        )))
    }
}

type Live = Option<consumer::pull::Ordered>;

/// An ordered consumer of delivery's task events from now on; None when JetStream is not
/// reachable (the stream then polls the log).
async fn follow(context: &Shared) -> Live {
    let consumer = async {
        let stream = context.js.get_stream(&context.stream).await?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: context.task_subject.clone(),
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await?;
        Ok::<_, async_nats::Error>(consumer.messages().await?)
    };
    match consumer.await {
        Ok(messages) => Some(messages),
        Err(err) => {
            tracing::warn!(error = %err, "watch: JetStream unavailable; polling the change log");
            None
        }
    }
}

/// Whether a JetStream message is a task event of `tenant` (other tenants' never wake us).
fn concerns(message: &async_nats::jetstream::Message, tenant: TenantId) -> bool {
    EventEnvelope::decode(message.payload.clone())
        .map(|envelope| envelope.tenant_id == tenant.to_string())
        .unwrap_or(false)
}

async fn stream_changes(
    context: Shared,
    tenant: TenantId,
    project: ProjectId,
    mut sent: i64,
    mut live: Live,
    sender: mpsc::Sender<Result<pb::TaskEvent, Status>>,
) {
    loop {
        // Send everything after `sent`, in batches, then wait for a wake-up.
        loop {
            match read_after(&context, tenant, project, sent).await {
                Ok(changes) => {
                    let full = changes.len() as i64 == BATCH;
                    for change in changes {
                        sent = change.sequence;
                        if sender.send(Ok(render(&change))).await.is_err() {
                            return;
                        }
                    }
                    if !full {
                        break;
                    }
                }
                Err(err) => {
                    let _ = sender.send(Err(err.into())).await;
                    return;
                }
            }
        }
        let woken = async {
            match live.as_mut() {
                Some(messages) => loop {
                    match messages.next().await {
                        Some(Ok(message)) if concerns(&message, tenant) => return true,
                        Some(Ok(_)) => {}
                        Some(Err(err)) => {
                            tracing::warn!(error = %err, "watch: JetStream message failed");
                            return false;
                        }
                        None => return false,
                    }
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sender.closed() => return,
            alive = woken => {
                if !alive {
                    live = follow(&context).await;
                }
            }
            () = tokio::time::sleep(FALLBACK_POLL) => {}
        }
    }
}

async fn read_after(
    context: &Shared,
    tenant: TenantId,
    project: ProjectId,
    sequence: i64,
) -> Result<Vec<Change>, Error> {
    let mut tx = db::tenant_tx(&context.db, tenant).await?;
    let changes = repo::changes::after(&mut tx, project, sequence, BATCH).await?;
    tx.commit().await?;
    Ok(changes)
}

fn render(change: &Change) -> pb::TaskEvent {
    pb::TaskEvent {
        event_id: change.event_id.to_string(),
        event_type: change.event_type.clone(),
        task: Some(pb::Task::from(&change.task)),
        occur_time: Some(timestamp(change.occurred_at)),
        sequence: change.sequence,
    }
}
