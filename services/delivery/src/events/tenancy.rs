//! The tenancy consumer: delivery's own projection of the tenant's members, so checking that an
//! assignee is a member needs no call to tenancy. `tenancy.member.added` makes a user a member,
//! `tenancy.member.removed` ends it and sends the user's open tasks (ASSIGNED, IN_PROGRESS,
//! REJECTED) back to DRAFT, unassigned, each with `delivery.task.unassigned`.
//!
//! Tenancy's member events carry the tenant's membership sequence as their version; an event not
//! newer than the last one applied for the user (a redelivery, or one overtaken) changes nothing.

use futures::future::BoxFuture;
use keel_kernel::clock::SharedClock;
use keel_kernel::consumer::{Event, EventHandler, EventTx};
use keel_kernel::outbox::Outbox;
use keel_kernel::{Error, UserId};
use keel_proto::tenancy::v1 as tenancy;

use super::Cause;
use crate::domain::TaskState;
use crate::repo;

pub const CONSUMER: &str = "tenancy";
pub const SUBJECTS: &str = "tenancy.member.>";
pub const MEMBER_ADDED: &str = "tenancy.member.added";
pub const MEMBER_REMOVED: &str = "tenancy.member.removed";

/// Why a task lost its assignee, in `delivery.task.unassigned`.
pub const MEMBER_REMOVED_REASON: &str = "member_removed";

pub struct TenancyEvents {
    outbox: Outbox,
    clock: SharedClock,
}

impl TenancyEvents {
    pub fn new(outbox: Outbox, clock: SharedClock) -> Self {
        TenancyEvents { outbox, clock }
    }

    #[tracing::instrument(skip_all, fields(event_type = %event.envelope.event_type, tenant_id = %event.envelope.tenant_id))]
    async fn apply(&self, tx: &mut EventTx, event: &Event) -> Result<(), Error> {
        let version = event.envelope.aggregate_version;
        let now = self.clock.now();
        let (user, active) = match event.envelope.event_type.as_str() {
            MEMBER_ADDED => {
                let added: tenancy::MemberAdded = event.payload()?;
                (UserId::parse_field("user_id", &added.user_id)?, true)
            }
            MEMBER_REMOVED => {
                let removed: tenancy::MemberRemoved = event.payload()?;
                (UserId::parse_field("user_id", &removed.user_id)?, false)
            }
            _ => return Ok(()),
        };
        let tx = tx.tenant()?;
        if !repo::members::apply(tx, user, active, version, now).await? {
            tracing::debug!(version, "stale member event; ignored");
            return Ok(());
        }
        if active {
            return Ok(());
        }
        let cause = Cause::system("delivery.members", &event.envelope.event_id);
        for before in repo::tasks::lock_open_work_of(tx, user).await? {
            let mut task = before.clone();
            task.state = TaskState::Draft;
            task.assignee = None;
            task.last_move = None;
            task.last_actor = None;
            task.version += 1;
            task.updated_at = now;
            repo::tasks::save(tx, &task).await?;
            let payload = super::task_unassigned(&task, &before, MEMBER_REMOVED_REASON);
            let event = super::task_event(super::TASK_UNASSIGNED, &task, &payload)?;
            super::task_changed(tx, &self.outbox, event, &task, &cause, now).await?;
        }
        Ok(())
    }
}

impl EventHandler for TenancyEvents {
    fn handle<'a>(
        &'a self,
        tx: &'a mut EventTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(tx, event))
    }
}
