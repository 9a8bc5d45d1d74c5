//! Notifications' durable jobs (the kernel's worker runs each once across replicas, in the
//! transaction that marks it done, retried with backoff on failure):
//! - `notifications.send_email`: one email, scheduled by the consumer in the event's
//!   transaction under the key `<event id>:<recipient>` (so a redelivered event schedules
//!   nothing twice); resolves the recipient and the link's secret at send time;
//! - `notifications.digest`: at the digest hour, one email listing a user's waiting
//!   notifications of one category (key `<tenant>:<user>:<category>:<day>`).
//!
//! An SMTP relay that accepted a message whose job then failed to commit gets it again on the
//! retry; the `Message-ID` is the job key, so the copy is recognisable as one.

use futures::future::BoxFuture;
use keel_kernel::jobs::{Job, JobHandler, JobTx};
use keel_kernel::{Error, TenantId, UserId};
use serde::{Deserialize, Serialize};

use crate::domain::Category;
use crate::events;
use crate::events::interpret::{Link, To};
use crate::ops::Deliverer;
use crate::ops::route::actor;
use crate::render::Content;
use crate::repo;

pub const SEND_EMAIL: &str = "notifications.send_email";
pub const DIGEST: &str = "notifications.digest";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendEmail {
    pub to: To,
    pub tenant: Option<TenantId>,
    pub category: Category,
    pub content: Content,
    pub link: Link,
    pub accept_language: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Digest {
    pub user: UserId,
    pub category: Category,
}

/// One handler per kind, all on the [`Deliverer`].
pub struct Handler {
    pub deliverer: Deliverer,
    pub kind: &'static str,
}

impl Handler {
    async fn send_email(&self, tx: &mut JobTx, job: &Job) -> Result<(), Error> {
        let send: SendEmail = job.payload()?;
        let outgoing = self.deliverer.prepare(tx, &send, &[]).await?;
        self.deliverer
            .mailer
            .send(
                &outgoing.to,
                &outgoing.display_name,
                &outgoing.email,
                &job.key,
            )
            .await?;
        let sent = events::email_sent(
            &job.key,
            send.tenant,
            &outgoing.user_id,
            &send.content.kind,
            outgoing.email.locale.tag(),
            &actor(),
        )?;
        self.deliverer.outbox.enqueue(tx.conn(), sent).await?;
        Ok(())
    }

    async fn digest(&self, tx: &mut JobTx, job: &Job) -> Result<(), Error> {
        let digest: Digest = job.payload()?;
        let tenant = tx.tenant()?.tenant();
        let lines = repo::digests::take(tx.tenant()?, digest.user, digest.category).await?;
        if lines.is_empty() {
            return Ok(());
        }
        let count = i64::try_from(lines.len()).unwrap_or(i64::MAX);
        let content = Content::new("digest").arg("count", count);
        let send = SendEmail {
            to: To::User(digest.user),
            tenant: Some(tenant),
            category: digest.category,
            content,
            link: Link::Path(format!("/tenants/{tenant}/notifications")),
            accept_language: String::new(),
        };
        let outgoing = self.deliverer.prepare(tx, &send, &lines).await?;
        self.deliverer
            .mailer
            .send(
                &outgoing.to,
                &outgoing.display_name,
                &outgoing.email,
                &job.key,
            )
            .await?;
        let sent = events::email_sent(
            &job.key,
            Some(tenant),
            &outgoing.user_id,
            &send.content.kind,
            outgoing.email.locale.tag(),
            &actor(),
        )?;
        self.deliverer.outbox.enqueue(tx.conn(), sent).await?;
        Ok(())
    }
}

impl JobHandler for Handler {
    fn run<'a>(&'a self, tx: &'a mut JobTx, job: &'a Job) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match self.kind {
                SEND_EMAIL => self.send_email(tx, job).await,
                DIGEST => self.digest(tx, job).await,
                other => Err(Error::internal(anyhow::anyhow!("unknown job kind {other}"))),
            }
        })
    }
}
