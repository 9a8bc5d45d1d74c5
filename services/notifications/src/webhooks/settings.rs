//! The `app.webhooks` section of `config/notifications.yaml`.

use std::time::Duration;

use keel_kernel::config::ConfigError;
use keel_webhooks::address::AddressPolicy;
use keel_webhooks::{DisablePolicy, SenderConfig};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Networks (CIDR) webhooks may reach although they are not public, e.g. `127.0.0.0/8` for
    /// local development and tests. Empty in production: public addresses only.
    pub allowed_networks: Vec<String>,
    /// One attempt's deadline (connect, send, answer).
    pub timeout_ms: u64,
    /// How much of an answer the delivery log keeps.
    pub response_excerpt_bytes: usize,
    /// An endpoint is disabled after this many failed attempts in a row...
    pub disable_after_failures: u32,
    /// ...spanning at least this long.
    pub disable_after_failing_for_secs: u64,
    /// The Telegram Bot API's base URL (a local server in tests).
    pub telegram_api_base: String,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        let disable = DisablePolicy::default();
        WebhookSettings {
            allowed_networks: Vec::new(),
            timeout_ms: 15_000,
            response_excerpt_bytes: 2048,
            disable_after_failures: disable.consecutive_failures,
            disable_after_failing_for_secs: disable.failing_for.as_secs(),
            telegram_api_base: "https://api.telegram.org".to_owned(),
        }
    }
}

impl WebhookSettings {
    pub fn policy(&self) -> Result<AddressPolicy, ConfigError> {
        AddressPolicy::from_networks(&self.allowed_networks)
            .map_err(|reason| ConfigError::invalid("app.webhooks.allowed_networks", reason))
    }

    pub fn sender_config(&self) -> Result<SenderConfig, ConfigError> {
        Ok(SenderConfig {
            policy: self.policy()?,
            timeout: Duration::from_millis(self.timeout_ms),
            connect_timeout: Duration::from_millis(self.timeout_ms.min(5_000)),
            max_excerpt_bytes: self.response_excerpt_bytes,
            ..SenderConfig::default()
        })
    }

    pub fn disable_policy(&self) -> DisablePolicy {
        DisablePolicy {
            consecutive_failures: self.disable_after_failures,
            failing_for: Duration::from_secs(self.disable_after_failing_for_secs),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy()?;
        if self.timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "app.webhooks.timeout_ms",
                "must be positive",
            ));
        }
        if self.disable_after_failures == 0 {
            return Err(ConfigError::invalid(
                "app.webhooks.disable_after_failures",
                "must be positive",
            ));
        }
        keel_webhooks::channel::validate_url(
            "app.webhooks.telegram_api_base",
            &self.telegram_api_base,
        )
        .map_err(|err| ConfigError::invalid("app.webhooks.telegram_api_base", err.reason))?;
        Ok(())
    }
}
