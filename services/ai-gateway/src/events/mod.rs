//! The events the ai-gateway publishes and consumes.
//!
//! Published: `ai.usage.recorded`, one per AI call (SUCCEEDED, FAILED and BLOCKED alike), written
//! to the outbox in the transaction that records the call's usage, so it is published exactly
//! when the usage row exists. Aggregate id = the completion id, version 1 (a call is recorded
//! once). Billing meters it as `ai.tokens`.
//!
//! Consumed: `billing.entitlements.changed` (`entitlements.rs`): the tenant's token limit
//! (`limits["ai.tokens.monthly"]`) and billing period, newest `version` wins.

pub mod entitlements;

use keel_kernel::outbox::NewEvent;
use keel_kernel::{Caller, Error};
use keel_proto::ai::v1 as pb;

use crate::domain::{CountedBy, UsageRecord};

pub const USAGE_RECORDED: &str = "ai.usage.recorded";

/// Actor and correlation of the request that caused the event.
fn caused_by(event: NewEvent, caller: &Caller) -> NewEvent {
    let event = event.actor(&caller.actor());
    match caller.request_id() {
        "" => event,
        request_id => event.correlation(request_id, request_id),
    }
}

// TODO(kernel): the envelope's event id should be the completion id (the contract in
// proto/ai/v1/events.proto); `NewEvent` cannot set it yet, so consumers deduplicate on
// `aggregate_id` (= the completion id) until it can.
pub fn usage_recorded(
    record: &UsageRecord,
    counted_by: CountedBy,
    caller: &Caller,
) -> Result<NewEvent, Error> {
    let payload = pb::UsageRecorded {
        record: Some(record.into()),
        counted_by: counted_by.as_str().to_owned(),
    };
    // The event id is the completion id: billing meters each call once, by event id.
    let event = NewEvent::new(USAGE_RECORDED, record.id, &payload)?
        .id(keel_kernel::EventId::from_uuid(record.id.as_uuid()))
        .tenant(record.tenant)
        .version(1);
    Ok(caused_by(event, caller))
}
