//! The events notifications publishes, and the consumers of every other context's events.
//!
//! Consumers (`consumer.rs`): one durable consumer per source context (NATS honours one subject
//! filter per consumer), all with the same handler. Each event runs in the kernel's inbox
//! transaction: a redelivered event finds its inbox row and has no second effect, and everything
//! it causes (inbox rows, email jobs, digest entries, webhook messages) commits with that row or
//! not at all. `interpret.rs` says which events concern whom; `ops::route` delivers.
//!
//! Published: `notifications.notification.created` (aggregate = notification id, version 1),
//! which the inbox's live stream wakes on; `notifications.email.sent` (aggregate = the email
//! job's key, version 1).

use keel_kernel::outbox::NewEvent;
use keel_kernel::{Actor, Error, TenantId};
use keel_proto::notifications::v1 as pb;

use crate::repo::notifications::Notification;

pub mod consumer;
pub mod interpret;

pub const NOTIFICATION_CREATED: &str = "notifications.notification.created";
pub const EMAIL_SENT: &str = "notifications.email.sent";

/// The subjects (under the stream prefix) the inbox's live stream follows.
pub const NOTIFICATION_SUBJECTS: &str = "notifications.notification.>";

/// The contexts notifications consumes: (durable consumer name, subject filter).
pub const SOURCES: [(&str, &str); 5] = [
    ("identity", "identity.>"),
    ("tenancy", "tenancy.>"),
    ("delivery", "delivery.>"),
    ("billing", "billing.>"),
    ("marketplace", "marketplace.>"),
];

pub fn notification_created(
    notification: &Notification,
    actor: &Actor,
    correlation: &str,
) -> Result<NewEvent, Error> {
    let payload = pb::NotificationCreated {
        notification_id: notification.id.to_string(),
        tenant_id: notification.tenant_id.to_string(),
        user_id: notification.user_id.to_string(),
        category: pb::Category::from(notification.category) as i32,
        source_event_type: notification.event_type.clone(),
    };
    Ok(
        NewEvent::new(NOTIFICATION_CREATED, notification.id, &payload)?
            .tenant(notification.tenant_id)
            .version(1)
            .actor(actor)
            .correlation(correlation, correlation),
    )
}

pub fn email_sent(
    key: &str,
    tenant: Option<TenantId>,
    user_id: &str,
    template: &str,
    locale: &str,
    actor: &Actor,
) -> Result<NewEvent, Error> {
    let payload = pb::EmailSent {
        delivery_key: key.to_owned(),
        user_id: user_id.to_owned(),
        template: template.to_owned(),
        locale: locale.to_owned(),
    };
    let event = NewEvent::new(EMAIL_SENT, key, &payload)?
        .version(1)
        .actor(actor);
    Ok(match tenant {
        Some(tenant) => event.tenant(tenant),
        None => event,
    })
}
