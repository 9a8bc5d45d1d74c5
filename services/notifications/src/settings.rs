//! Notifications' own settings: the `app` section of `config/notifications.yaml`.

use keel_kernel::config::{ConfigError, Validate};
use keel_kernel::service_client::ServiceClientConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub smtp: SmtpSettings,
    /// The web app's base URL: links in emails point under it (`/verify-email?token=...`).
    pub web_url: String,
    /// How this service gets its own service token from identity (client credentials), for the
    /// calls a message needs: recipients' addresses and languages, verification and
    /// password-reset tokens (identity), invitation tokens (tenancy).
    pub identity_client: ServiceClientConfig,
    /// Tenancy's gRPC address.
    pub tenancy_url: String,
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

impl Default for Settings {
    fn default() -> Self {
        Settings {
            smtp: SmtpSettings::default(),
            web_url: "http://127.0.0.1:8080".to_owned(),
            identity_client: ServiceClientConfig {
                identity_url: "http://127.0.0.1:50051".to_owned(),
                client_id: "notifications".to_owned(),
                client_secret: None,
                client_secret_file: Some("/etc/keel/notifications/client-secret".into()),
                permissions: Vec::new(),
                connect_timeout_ms: 2_000,
                request_timeout_ms: 5_000,
            },
            tenancy_url: "http://127.0.0.1:50052".to_owned(),
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
        self.identity_client.validate("app.identity_client")?;
        http_url("app.tenancy_url", &self.tenancy_url)?;
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
