//! The usage log: one record per AI call.

use chrono::{DateTime, Utc};
use keel_kernel::TenantId;

use crate::domain::CompletionId;

/// Outcome of a call. Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum CallStatus {
    Succeeded,
    /// The provider failed (before any output: nothing charged; midway: what was produced).
    Failed,
    /// A guardrail refused it: nothing charged.
    Blocked,
}

/// Who counted the completion tokens. Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum CountedBy {
    /// The provider's own usage report.
    Provider,
    /// The gateway's tokenizer (no report: the `local` provider, a cut stream).
    Tokenizer,
}

impl CountedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            CountedBy::Provider => "provider",
            CountedBy::Tokenizer => "tokenizer",
        }
    }
}

/// Tokens and cost of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenCounts {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
}

impl TokenCounts {
    pub fn total(&self) -> i64 {
        self.prompt_tokens + self.completion_tokens
    }
}

#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub id: CompletionId,
    pub tenant: TenantId,
    /// A user id, `apikey:<id>` or `service:<name>`.
    pub principal: String,
    pub model: String,
    pub provider: String,
    pub tokens: TokenCounts,
    pub currency: String,
    pub status: CallStatus,
    pub counted_by: CountedBy,
    pub request_id: String,
    pub created_at: DateTime<Utc>,
}

impl From<CallStatus> for keel_proto::ai::v1::CallStatus {
    fn from(status: CallStatus) -> Self {
        use keel_proto::ai::v1::CallStatus as Pb;
        match status {
            CallStatus::Succeeded => Pb::Succeeded,
            CallStatus::Failed => Pb::Failed,
            CallStatus::Blocked => Pb::Blocked,
        }
    }
}

/// The wire form both ListUsage and the `ai.usage.recorded` event carry.
impl From<&UsageRecord> for keel_proto::ai::v1::UsageRecord {
    fn from(record: &UsageRecord) -> Self {
        use keel_proto::ai::v1 as pb;
        pb::UsageRecord {
            id: record.id.to_string(),
            tenant_id: record.tenant.to_string(),
            principal_id: record.principal.clone(),
            model: record.model.clone(),
            provider: record.provider.clone(),
            usage: Some(pb::TokenUsage {
                prompt_tokens: record.tokens.prompt_tokens,
                completion_tokens: record.tokens.completion_tokens,
                total_tokens: record.tokens.total(),
                cost_micros: record.tokens.cost_micros,
                currency: record.currency.clone(),
            }),
            status: pb::CallStatus::from(record.status) as i32,
            request_id: record.request_id.clone(),
            create_time: Some(keel_kernel::grpc::timestamp(record.created_at)),
        }
    }
}
