//! Notifications' own settings: the `app` section of `config/notifications.yaml`.

use std::path::PathBuf;

use keel_kernel::config::{ConfigError, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub smtp: SmtpSettings,
    /// The web app's base URL: links in emails point under it (`/verify-email?token=...`).
    pub web_url: String,
    /// The services a message needs something from (recipients' addresses and languages,
    /// verification and invitation tokens), called with this service's own service token.
    pub peers: PeerSettings,
    /// The hour (UTC) at which daily digests are sent.
    pub digest_hour_utc: u32,
    /// Outbound webhooks (`app.webhooks`).
    pub webhooks: crate::webhooks::WebhookSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// The relay: a local mail sink in development, the cluster's relay in production. Plain SMTP
    /// (no TLS): the relay is on the loopback or the cluster network.
    pub host: String,
    pub port: u16,
    /// The `From:` of every message, e.g. `Keel <no-reply@keel.local>`.
    pub from: String,
    /// How long one SMTP conversation may take before the send job fails and is retried.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerSettings {
    /// Identity's gRPC endpoint (`http://127.0.0.1:50051`).
    pub identity_url: String,
    /// Tenancy's gRPC endpoint.
    pub tenancy_url: String,
    /// This service's client id at identity (`IssueServiceToken`).
    pub client_id: String,
    /// A file holding the client secret (a mounted secret; `.dev/` locally).
    pub client_secret_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            smtp: SmtpSettings::default(),
            web_url: "http://127.0.0.1:8080".to_owned(),
            peers: PeerSettings::default(),
            digest_hour_utc: 8,
            webhooks: crate::webhooks::WebhookSettings::default(),
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: "127.0.0.1".to_owned(),
            port: 2525,
            from: "Keel <no-reply@keel.local>".to_owned(),
            timeout_ms: 10_000,
        }
    }
}

impl Default for PeerSettings {
    fn default() -> Self {
        PeerSettings {
            identity_url: "http://127.0.0.1:50051".to_owned(),
            tenancy_url: "http://127.0.0.1:50052".to_owned(),
            client_id: "notifications".to_owned(),
            client_secret_file: None,
        }
    }
}

fn http_url(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            "must be an http:// or https:// URL",
        ))
    }
}

impl Validate for Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.smtp.host.trim().is_empty() {
            return Err(ConfigError::invalid("app.smtp.host", "is required"));
        }
        if self.smtp.port == 0 {
            return Err(ConfigError::invalid("app.smtp.port", "must not be 0"));
        }
        if self.smtp.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::invalid(
                "app.smtp.from",
                "must be a mailbox such as `Keel <no-reply@example.com>`",
            ));
        }
        if !(100..=120_000).contains(&self.smtp.timeout_ms) {
            return Err(ConfigError::invalid(
                "app.smtp.timeout_ms",
                "must be between 100 and 120000",
            ));
        }
        http_url("app.web_url", &self.web_url)?;
        http_url("app.peers.identity_url", &self.peers.identity_url)?;
        http_url("app.peers.tenancy_url", &self.peers.tenancy_url)?;
        if self.peers.client_id.is_empty() {
            return Err(ConfigError::invalid("app.peers.client_id", "is required"));
        }
        if self.digest_hour_utc > 23 {
            return Err(ConfigError::invalid(
                "app.digest_hour_utc",
                "must be between 0 and 23",
            ));
        }
        self.webhooks.validate()?;
        Ok(())
    }
}
