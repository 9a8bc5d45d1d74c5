//! The gRPC surface: `AiService` (`ai.rs`), with the completion path in `completion.rs`.
//!
//! Every method has the same shape: the trait method builds the kernel's `Caller` from the
//! verified token and hands the request body to a use-case method, whose kernel `Error` becomes a
//! `tonic::Status` through `?`. A use case authorises the caller, turns the request into domain
//! values (`convert`), runs its transactions and turns the result back into proto.

mod ai;
mod completion;
pub mod convert;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use keel_kernel::TenantId;
use keel_kernel::outbox::Outbox;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sqlx::PgPool;

use crate::providers::Router;
use crate::settings::Settings;
use keel_kernel::clock::SharedClock;

pub use ai::Ai;

/// What every handler shares.
pub struct Context {
    pub db: PgPool,
    pub outbox: Outbox,
    pub settings: Settings,
    pub router: Router,
    pub clock: SharedClock,
    pub metrics: AiMetrics,
    /// The sweep bucket this process last saw committed per tenant, so that only a tenant's first
    /// reservation in a bucket pays for scheduling its sweep (scheduling again is harmless).
    pub sweeps: Mutex<HashMap<TenantId, i64>>,
}

impl Context {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn sweep_scheduled(&self, tenant: TenantId, bucket: i64) -> bool {
        let sweeps = self.sweeps.lock().unwrap_or_else(PoisonError::into_inner);
        sweeps.get(&tenant) == Some(&bucket)
    }

    /// Call once the transaction that scheduled the sweep has committed.
    pub fn sweep_committed(&self, tenant: TenantId, bucket: i64) {
        let mut sweeps = self.sweeps.lock().unwrap_or_else(PoisonError::into_inner);
        sweeps.insert(tenant, bucket);
    }
}

pub type Shared = Arc<Context>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub model: String,
    pub provider: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
    pub provider: String,
}

/// The gateway's own series, on the kernel's registry.
#[derive(Clone, Debug)]
pub struct AiMetrics {
    /// Guardrail hits by rule (`email`, `card`, `blocked_term`, ...).
    pub guardrail_hits: Family<RuleLabels, Counter>,
    /// Calls by model, provider and outcome.
    pub calls: Family<CallLabels, Counter>,
    /// Tokens charged by model and provider.
    pub tokens: Family<ModelLabels, Counter>,
}

impl AiMetrics {
    pub fn register(registry: &keel_kernel::metrics::MetricsRegistry) -> AiMetrics {
        AiMetrics {
            guardrail_hits: registry.register(
                "ai_guardrail_hits",
                "Guardrail rule hits (redactions and refusals) by rule",
                Family::default(),
            ),
            calls: registry.register(
                "ai_calls",
                "AI calls by model, provider and status",
                Family::default(),
            ),
            tokens: registry.register(
                "ai_tokens",
                "Tokens charged by model and provider",
                Family::default(),
            ),
        }
    }
}
