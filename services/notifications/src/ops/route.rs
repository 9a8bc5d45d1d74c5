//! Routing: one [`Intent`] (what an event should tell whom) to each recipient's channels, in the
//! event's transaction. The in-app inbox gets a row (and `notifications.notification.created`),
//! email gets a durable job (sent now) or a digest entry (sent by the day's digest job). The
//! tenant's webhooks get every event through consumers of their own (`webhooks::consumer`), not
//! through this routing: an endpoint wants events that notify nobody too. A recipient's channels are their preference, else the
//! tenant's default, else everything; security messages always go out.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use keel_kernel::consumer::{Event, EventTx};
use keel_kernel::jobs::{self, NewJob};
use keel_kernel::{Actor, Error, EventId, TenantId};

use super::Deliverer;
use crate::domain::{Category, EmailCadence, Locale, NotificationId};
use crate::events::interpret::{Intent, To};
use crate::events::{self};
use crate::jobs::{DIGEST, Digest, SEND_EMAIL, SendEmail};
use crate::repo;
use crate::repo::notifications::NewNotification;

/// The actor of everything the consumers write.
pub fn actor() -> Actor {
    Actor::system("notifications")
}

impl Deliverer {
    #[tracing::instrument(skip_all, fields(event_type = %event.envelope.event_type, tenant_id = %event.envelope.tenant_id))]
    pub async fn route(
        &self,
        tx: &mut EventTx,
        event: &Event,
        intent: Intent,
    ) -> Result<(), Error> {
        let event_id = EventId::parse_field("event_id", &event.envelope.event_id)?;
        let tenant = event.tenant()?;
        let info = match tenant {
            Some(_) => Some(repo::tenants::get(tx.tenant()?).await?),
            None => None,
        };
        let mut content = intent.content.clone();
        if let Some(info) = &info {
            content = content.arg("tenant", info.name.as_str());
        }
        for to in &intent.recipients {
            let to = match to {
                To::TenantOwner => match info.as_ref().and_then(|i| i.owner) {
                    Some(owner) => To::User(owner),
                    None => continue,
                },
                other => other.clone(),
            };
            let channels = match (&to, tenant) {
                (To::User(user), Some(_)) => {
                    let tx = tx.tenant()?;
                    repo::preferences::effective(tx, Some(*user))
                        .await?
                        .into_iter()
                        .find(|(c, _)| *c == intent.category)
                        .map(|(_, ch)| ch)
                        .unwrap_or_else(|| intent.category.platform_default())
                }
                // An invitee or an event without a tenant: nobody chose anything yet.
                _ => intent.category.platform_default(),
            };
            let mut inbox_id = None;
            let mut digest_title = None;
            if let (To::User(user), Some(info)) = (&to, &info)
                && intent.inbox
                && (channels.in_app || channels.cadence == EmailCadence::DailyDigest)
            {
                let recipient = self.peers.user(*user).await?;
                let locale = Locale::choose(
                    &recipient.locale,
                    &info.default_locale,
                    &intent.accept_language,
                );
                let personal = content.clone().arg("name", recipient.display_name.as_str());
                let (title, body) = self.renderer.inbox(locale, &personal);
                digest_title = Some(title.clone());
                if channels.in_app {
                    inbox_id = self
                        .notify_in_app(tx, event, event_id, *user, &intent, &title, &body)
                        .await?;
                }
            }
            if !channels.email {
                continue;
            }
            let digest = channels.cadence == EmailCadence::DailyDigest
                && intent.category != Category::Security;
            match (&to, tenant, digest) {
                (To::User(user), Some(tenant), true) => {
                    let title = digest_title.unwrap_or_default();
                    self.queue_digest(tx, tenant, *user, intent.category, inbox_id, &title)
                        .await?;
                }
                _ => {
                    let job = SendEmail {
                        to: to.clone(),
                        tenant,
                        category: intent.category,
                        content: content.clone(),
                        link: intent.link.clone(),
                        accept_language: intent.accept_language.clone(),
                    };
                    let key = format!("{event_id}:{}", recipient_key(&to));
                    let mut new = NewJob::new(SEND_EMAIL, key, self.clock.now()).payload(&job)?;
                    if let Some(tenant) = tenant {
                        new = new.tenant(tenant);
                    }
                    jobs::schedule(tx.conn(), new).await?;
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn notify_in_app(
        &self,
        tx: &mut EventTx,
        event: &Event,
        event_id: EventId,
        user: keel_kernel::UserId,
        intent: &Intent,
        title: &str,
        body: &str,
    ) -> Result<Option<NotificationId>, Error> {
        let link = match &intent.link {
            crate::events::interpret::Link::Path(path) => path.as_str(),
            _ => "",
        };
        let tx = tx.tenant()?;
        let new = NewNotification {
            user_id: user,
            category: intent.category,
            event_type: &event.envelope.event_type,
            source_event_id: event_id,
            title,
            body,
            link,
        };
        let Some(notification) = repo::notifications::insert(tx, &new, self.clock.now()).await?
        else {
            return Ok(None);
        };
        let created =
            events::notification_created(&notification, &actor(), &event.envelope.event_id)?;
        self.outbox.enqueue(tx, created).await?;
        Ok(Some(notification.id))
    }

    async fn queue_digest(
        &self,
        tx: &mut EventTx,
        tenant: TenantId,
        user: keel_kernel::UserId,
        category: Category,
        notification: Option<NotificationId>,
        title: &str,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let tx = tx.tenant()?;
        let id = notification.unwrap_or_else(NotificationId::new);
        repo::digests::add(tx, user, category, id, title, now).await?;
        let at = next_digest_time(now, self.settings.digest_hour_utc);
        let job = NewJob::new(
            DIGEST,
            format!("{tenant}:{user}:{category:?}:{}", at.format("%Y-%m-%d")),
            at,
        )
        .tenant(tenant)
        .payload(&Digest { user, category })?;
        jobs::schedule(tx, job).await?;
        Ok(())
    }
}

/// The part of an email job's key that names its recipient.
fn recipient_key(to: &To) -> String {
    match to {
        To::User(user) => user.to_string(),
        To::TenantOwner => "owner".to_owned(),
        To::Address(address) => keel_kernel::Email::normalize(address),
    }
}

/// The next digest time at `hour` (UTC) strictly after `now`.
pub fn next_digest_time(now: DateTime<Utc>, hour: u32) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(hour.min(23), 0, 0).unwrap_or_default();
    let today = now.date_naive().and_time(time).and_utc();
    if today > now {
        today
    } else {
        today + Duration::days(1)
    }
}
