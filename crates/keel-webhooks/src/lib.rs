//! Outbound webhooks without a database: what the notifications service needs to send a message
//! to a tenant's endpoint, and nothing about where messages are stored.
//!
//! - [`signature`]: the Standard Webhooks format (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature: v1,<base64 HMAC-SHA256>`, `whsec_` secrets, several signatures during a
//!   secret rotation), both signing and verifying.
//! - [`address`]: which network addresses a tenant-supplied URL may reach (SSRF).
//! - [`sender`]: an HTTP client that resolves each host once, refuses forbidden addresses,
//!   connects to exactly what it checked, never follows redirects and keeps a bounded excerpt of
//!   the answer.
//! - [`schedule`]: the retry schedule (about three days, with jitter) and the rule that disables
//!   an endpoint after a run of failures, as pure functions.
//! - [`channel`]: generic webhooks, Slack incoming webhooks and Telegram bots as one request shape.
#![forbid(unsafe_code)]

pub mod address;
pub mod channel;
pub mod schedule;
pub mod sender;
pub mod signature;

pub use address::{AddressPolicy, AddressRefusal};
pub use channel::{Channel, OutboundMessage, PreparedRequest};
pub use schedule::{DisablePolicy, RETRY_SCHEDULE, retry_delay, should_disable};
pub use sender::{Attempt, AttemptFailure, Sender, SenderConfig};
pub use signature::{SignatureError, WebhookSecret};
