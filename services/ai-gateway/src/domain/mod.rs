//! The ai-gateway's domain: validated values and the rules that need no database (token
//! counting, guardrails, quota periods and prices, memory search terms and scores).

pub mod completion;
pub mod guardrails;
pub mod ids;
pub mod memory;
pub mod permissions;
pub mod quota;
pub mod tokens;
pub mod usage;

pub use completion::{ChatMessage, ChatRole, CompletionInput, FinishReason};
pub use guardrails::{Guardrails, Inspection, Rule};
pub use ids::CompletionId;
pub use memory::{Memory, MemoryId, NewMemory, SearchTerms};
pub use quota::{Period, Prices, Quota};
pub use usage::{CallStatus, CountedBy, TokenCounts, UsageRecord};
