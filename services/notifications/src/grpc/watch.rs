//! `WatchNotifications`: the caller's new notifications as they commit, resumable without gaps.
//!
//! The truth is the inbox, numbered per user by a gapless-in-commit-order sequence (the inbox
//! head's row lock orders the commits). JetStream feeds the live part: an ordered consumer on
//! `notifications.notification.>` (so any replica serves any watcher) wakes the stream when one
//! of the user's notifications is published, and the stream then sends the inbox after the last
//! sequence it sent. A resume (`after_event_id` or the gateway's `last-event-id`) starts after
//! that notification, so a reconnect loses nothing and repeats nothing.

use std::time::Duration;

use async_nats::jetstream::consumer;
use futures::StreamExt;
use keel_kernel::{Caller, Error, TenantId, UserId, db};
use keel_proto::events::v1::EventEnvelope;
use keel_proto::notifications::v1 as pb;
use prost::Message;
use tokio::sync::mpsc;
use tonic::Status;

use super::inbox::own_inbox;
use super::notifications::NotificationEvents;
use super::{Notifications, Shared};
use crate::domain::{NotificationId, permissions};
use crate::repo;
use crate::repo::notifications::Notification;

/// The metadata the gateway forwards the SSE `Last-Event-ID` header as.
pub const LAST_EVENT_ID: &str = "last-event-id";

const BATCH: i64 = 200;
/// The inbox is read this often even without a JetStream wake-up (a missed message, NATS down).
const FALLBACK_POLL: Duration = Duration::from_secs(2);
const BUFFER: usize = 64;
/// How long a new watch waits for its JetStream consumer before falling back to polling.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(1);

impl Notifications {
    pub(super) async fn watch(
        &self,
        caller: &Caller,
        request: pb::WatchNotificationsRequest,
        last_event_id: &str,
    ) -> Result<NotificationEvents, Error> {
        let (tenant, user) = own_inbox(caller, &request.tenant_id, permissions::INBOX_READ)?;
        let resume = match (request.after_event_id.as_str(), last_event_id) {
            ("", "") => None,
            ("", header) => Some(NotificationId::parse_field(LAST_EVENT_ID, header)?),
            (field, _) => Some(NotificationId::parse_field("after_event_id", field)?),
        };
        // Follow JetStream before reading the inbox, so one committed in between is seen. Bounded:
        // the watch must answer at once (the gateway times out a call with no response), and
        // without JetStream it still works, by polling the inbox.
        let live = tokio::time::timeout(FOLLOW_TIMEOUT, follow(&self.0))
            .await
            .unwrap_or_else(|_| {
                tracing::warn!("watch: JetStream did not answer in time; polling the inbox");
                None
            });
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let start = match resume {
            Some(id) => repo::notifications::get(&mut tx, user, id).await?.sequence,
            None => repo::notifications::head(&mut tx, user).await?,
        };
        tx.commit().await?;
        let (sender, receiver) = mpsc::channel(BUFFER);
        tokio::spawn(stream_inbox(
            self.0.clone(),
            tenant,
            user,
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

async fn follow(context: &Shared) -> Live {
    let consumer = async {
        let stream = context.js.get_stream(&context.stream).await?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: context.notification_subject.clone(),
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await?;
        Ok::<_, async_nats::Error>(consumer.messages().await?)
    };
    match consumer.await {
        Ok(messages) => Some(messages),
        Err(err) => {
            tracing::warn!(error = %err, "watch: JetStream unavailable; polling the inbox");
            None
        }
    }
}

/// Whether a message is a notification for `user` of `tenant` (nobody else's wakes us).
fn concerns(message: &async_nats::jetstream::Message, tenant: TenantId, user: UserId) -> bool {
    let Ok(envelope) = EventEnvelope::decode(message.payload.clone()) else {
        return false;
    };
    if envelope.tenant_id != tenant.to_string() {
        return false;
    }
    envelope
        .payload
        .and_then(|any| any.to_msg::<pb::NotificationCreated>().ok())
        .is_some_and(|created| created.user_id == user.to_string())
}

async fn stream_inbox(
    context: Shared,
    tenant: TenantId,
    user: UserId,
    mut sent: i64,
    mut live: Live,
    sender: mpsc::Sender<Result<pb::NotificationEvent, Status>>,
) {
    loop {
        loop {
            match read_after(&context, tenant, user, sent).await {
                Ok((notifications, unread)) => {
                    let full = notifications.len() as i64 == BATCH;
                    let count = notifications.len() as i64;
                    for (i, notification) in notifications.iter().enumerate() {
                        sent = notification.sequence;
                        // The count as of this one: later ones of the batch are unread too.
                        let unread_count = unread - (count - 1 - i as i64);
                        let event = pb::NotificationEvent {
                            event_id: notification.id.to_string(),
                            notification: Some(pb::Notification::from(notification)),
                            unread_count: unread_count.max(0),
                        };
                        if sender.send(Ok(event)).await.is_err() {
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
                        Some(Ok(message)) if concerns(&message, tenant, user) => return true,
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
    user: UserId,
    sequence: i64,
) -> Result<(Vec<Notification>, i64), Error> {
    let mut tx = db::tenant_tx(&context.db, tenant).await?;
    let notifications = repo::notifications::after(&mut tx, user, sequence, BATCH).await?;
    let unread = repo::notifications::unread_count(&mut tx, user).await?;
    tx.commit().await?;
    Ok((notifications, unread))
}
