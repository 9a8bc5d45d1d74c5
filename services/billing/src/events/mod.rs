//! The events billing publishes, built from domain values, and the consumers of other services'
//! events (`consumers`). Each published event is written to the outbox in the transaction of
//! the change it reports.
//!
//! Aggregates and versions:
//! - `billing.subscription.*`: aggregate id = subscription id, version = its update time in
//!   microseconds (increases with every change of the subscription).
//! - `billing.invoice.*`: aggregate id = invoice id, version = 1 finalized, 2 paid / voided /
//!   uncollectible (each invoice leaves OPEN once).
//! - `billing.entitlements.changed`: aggregate id = tenant id, version = the tenant's
//!   entitlements version (also in the payload).

pub mod consumers;

use chrono::{DateTime, Utc};
use keel_kernel::grpc::timestamp;
use keel_kernel::outbox::NewEvent;
use keel_kernel::{Actor, Caller, Error, TenantId};
use keel_proto::billing::v1 as pb;

use crate::domain::{CancelReason, Invoice, Plan, PriceId, Subscription};

pub const SUBSCRIPTION_CREATED: &str = "billing.subscription.created";
pub const SUBSCRIPTION_CHANGED: &str = "billing.subscription.changed";
pub const SUBSCRIPTION_CANCELED: &str = "billing.subscription.canceled";
pub const INVOICE_FINALIZED: &str = "billing.invoice.finalized";
pub const INVOICE_PAID: &str = "billing.invoice.paid";
pub const INVOICE_VOIDED: &str = "billing.invoice.voided";
pub const INVOICE_UNCOLLECTIBLE: &str = "billing.invoice.uncollectible";
pub const ENTITLEMENTS_CHANGED: &str = "billing.entitlements.changed";

/// Who caused a change and what it belongs to: a request (its caller and request id) or the
/// system (a consumer or a job, correlated with the event or job behind it).
#[derive(Debug, Clone)]
pub struct Cause {
    actor: Actor,
    correlation: String,
}

impl Cause {
    pub fn request(caller: &Caller) -> Cause {
        Cause {
            actor: caller.actor(),
            correlation: caller.request_id().to_owned(),
        }
    }

    pub fn system(what: &str, correlation: impl Into<String>) -> Cause {
        Cause {
            actor: Actor::system(what),
            correlation: correlation.into(),
        }
    }

    fn apply(&self, event: NewEvent) -> NewEvent {
        let event = event.actor(&self.actor);
        match self.correlation.as_str() {
            "" => event,
            id => event.correlation(id, id),
        }
    }
}

fn subscription_event<M: prost::Name>(
    event_type: &str,
    subscription: &Subscription,
    payload: &M,
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let event = NewEvent::new(event_type, subscription.id, payload)?
        .tenant(subscription.tenant_id)
        .version(subscription.updated_at.timestamp_micros());
    Ok(cause.apply(event))
}

pub fn subscription_created(subscription: &Subscription, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::SubscriptionCreated {
        subscription: Some(subscription.into()),
    };
    subscription_event(SUBSCRIPTION_CREATED, subscription, &payload, cause)
}

pub fn subscription_changed(
    subscription: &Subscription,
    previous_price: PriceId,
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let payload = pb::SubscriptionChanged {
        subscription: Some(subscription.into()),
        previous_price_id: previous_price.to_string(),
    };
    subscription_event(SUBSCRIPTION_CHANGED, subscription, &payload, cause)
}

pub fn subscription_canceled(
    subscription: &Subscription,
    reason: CancelReason,
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let payload = pb::SubscriptionCanceled {
        subscription: Some(subscription.into()),
        reason: reason.as_str().into(),
    };
    subscription_event(SUBSCRIPTION_CANCELED, subscription, &payload, cause)
}

fn invoice_event<M: prost::Name>(
    event_type: &str,
    invoice: &Invoice,
    version: i64,
    payload: &M,
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let event = NewEvent::new(event_type, invoice.id, payload)?
        .tenant(invoice.tenant_id)
        .version(version);
    Ok(cause.apply(event))
}

pub fn invoice_finalized(invoice: &Invoice, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::InvoiceFinalized {
        invoice: Some(invoice.into()),
    };
    invoice_event(INVOICE_FINALIZED, invoice, 1, &payload, cause)
}

pub fn invoice_paid(invoice: &Invoice, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::InvoicePaid {
        invoice: Some(invoice.into()),
    };
    invoice_event(INVOICE_PAID, invoice, 2, &payload, cause)
}

pub fn invoice_voided(invoice: &Invoice, reason: &str, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::InvoiceVoided {
        invoice: Some(invoice.into()),
        reason: reason.into(),
    };
    invoice_event(INVOICE_VOIDED, invoice, 2, &payload, cause)
}

pub fn invoice_uncollectible(invoice: &Invoice, cause: &Cause) -> Result<NewEvent, Error> {
    let payload = pb::InvoiceUncollectible {
        invoice: Some(invoice.into()),
    };
    invoice_event(INVOICE_UNCOLLECTIBLE, invoice, 2, &payload, cause)
}

/// What `plan` grants `tenant` from now on, for the period [start, end).
pub fn entitlements_changed(
    tenant: TenantId,
    plan: &Plan,
    period: (DateTime<Utc>, DateTime<Utc>),
    version: i64,
    cause: &Cause,
) -> Result<NewEvent, Error> {
    let payload = pb::EntitlementsChanged {
        tenant_id: tenant.to_string(),
        plan_id: plan.id.clone(),
        limits: plan.limits.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        modules: plan.modules.clone(),
        period_start_time: Some(timestamp(period.0)),
        period_end_time: Some(timestamp(period.1)),
        version,
    };
    let event = NewEvent::new(ENTITLEMENTS_CHANGED, tenant, &payload)?
        .tenant(tenant)
        .version(version);
    Ok(cause.apply(event))
}
