//! The kinds of endpoint a message can go to, each turned into one HTTP POST.
//!
//! - A generic webhook gets the Standard Webhooks envelope (`{"type", "timestamp", "data"}`)
//!   signed with the endpoint's secrets.
//! - A Slack incoming webhook gets `text` plus `blocks` (Slack signs nothing: the URL is the
//!   secret).
//! - A Telegram bot gets `sendMessage` with the chat id; the bot token is part of the URL, so the
//!   URL shown in logs has it redacted.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::signature::{self, WebhookSecret};

/// One message to deliver, the same across retries.
#[derive(Clone, Debug)]
pub struct OutboundMessage {
    /// `webhook-id`: unique per message and stable across retries, so receivers can deduplicate.
    pub id: String,
    /// e.g. `delivery.task.assigned`.
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// The event's payload, sent as `data` to generic webhooks.
    pub data: serde_json::Value,
    /// One or two sentences for people, sent to chat channels.
    pub summary: String,
}

/// Where and how a message goes.
#[derive(Clone, Debug)]
pub enum Channel {
    /// Signed with every secret in `secrets` (two during a rotation).
    Webhook {
        url: String,
        secrets: Vec<WebhookSecret>,
    },
    Slack {
        url: String,
    },
    Telegram {
        /// `https://api.telegram.org` in production; a local server in tests.
        api_base: String,
        bot_token: String,
        chat_id: String,
    },
}

/// The HTTP request a channel makes for one message.
#[derive(Clone, Debug)]
pub struct PreparedRequest {
    pub url: String,
    /// The URL as it may be logged or shown (no bot token).
    pub display_url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A channel definition that cannot work, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ChannelError {
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ChannelError {
    ChannelError {
        field,
        reason: reason.into(),
    }
}

/// Checks an endpoint URL's shape: absolute http(s), a host, no credentials, no fragment.
pub fn validate_url(field: &'static str, url: &str) -> Result<reqwest::Url, ChannelError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|err| invalid(field, format!("not a URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(field, "must be an http or https URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(field, "must not contain credentials"));
    }
    if parsed.fragment().is_some() {
        return Err(invalid(field, "must not contain a #fragment"));
    }
    Ok(parsed)
}

/// Slack's mrkdwn reserves these three characters.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Channel {
    /// The kind as stored and shown: `webhook`, `slack` or `telegram`.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Slack { .. } => "slack",
            Channel::Telegram { .. } => "telegram",
        }
    }

    /// Checks the definition's shape (not where it resolves: that is the sender's job).
    pub fn validate(&self) -> Result<(), ChannelError> {
        match self {
            Channel::Webhook { url, secrets } => {
                validate_url("url", url)?;
                if secrets.is_empty() {
                    return Err(invalid("secret", "a webhook needs a signing secret"));
                }
            }
            Channel::Slack { url } => {
                validate_url("url", url)?;
            }
            Channel::Telegram {
                api_base,
                bot_token,
                chat_id,
            } => {
                validate_url("telegram_api_base", api_base)?;
                // Bot tokens look like `123456:ABC-def_ghi`.
                let well_formed = bot_token.split_once(':').is_some_and(|(bot, key)| {
                    !bot.is_empty()
                        && bot.bytes().all(|byte| byte.is_ascii_digit())
                        && !key.is_empty()
                        && key.bytes().all(|byte| {
                            byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
                        })
                });
                if !well_formed {
                    return Err(invalid(
                        "telegram_bot_token",
                        "must look like 123456:ABC-def",
                    ));
                }
                let chat_ok = chat_id.parse::<i64>().is_ok()
                    || (chat_id.starts_with('@') && chat_id.len() > 1);
                if !chat_ok {
                    return Err(invalid(
                        "telegram_chat_id",
                        "must be a numeric chat id or an @channel name",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The request for `message`, signed at `now_unix` (seconds) where the channel signs.
    pub fn prepare(&self, message: &OutboundMessage, now_unix: i64) -> PreparedRequest {
        let json_headers = || vec![("content-type".to_owned(), "application/json".to_owned())];
        match self {
            Channel::Webhook { url, secrets } => {
                let body = json!({
                    "type": message.event_type,
                    "timestamp": message.occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                    "data": message.data,
                })
                .to_string()
                .into_bytes();
                let mut headers = json_headers();
                headers.push((signature::HEADER_ID.to_owned(), message.id.clone()));
                headers.push((signature::HEADER_TIMESTAMP.to_owned(), now_unix.to_string()));
                headers.push((
                    signature::HEADER_SIGNATURE.to_owned(),
                    signature::sign(secrets, &message.id, now_unix, &body),
                ));
                PreparedRequest {
                    url: url.clone(),
                    display_url: url.clone(),
                    headers,
                    body,
                }
            }
            Channel::Slack { url } => {
                let body = json!({
                    "text": message.summary,
                    "blocks": [
                        {
                            "type": "section",
                            "text": { "type": "mrkdwn", "text": slack_escape(&message.summary) },
                        },
                        {
                            "type": "context",
                            "elements": [{
                                "type": "mrkdwn",
                                "text": format!("`{}` · {}", slack_escape(&message.event_type), message.id),
                            }],
                        },
                    ],
                })
                .to_string()
                .into_bytes();
                PreparedRequest {
                    url: url.clone(),
                    display_url: url.clone(),
                    headers: json_headers(),
                    body,
                }
            }
            Channel::Telegram {
                api_base,
                bot_token,
                chat_id,
            } => {
                let base = api_base.trim_end_matches('/');
                let body = json!({
                    "chat_id": chat_id,
                    "text": format!("{}\n\n{}", message.summary, message.event_type),
                    "disable_web_page_preview": true,
                })
                .to_string()
                .into_bytes();
                PreparedRequest {
                    url: format!("{base}/bot{bot_token}/sendMessage"),
                    display_url: format!("{base}/bot<redacted>/sendMessage"),
                    headers: json_headers(),
                    body,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> OutboundMessage {
        OutboundMessage {
            id: "msg_1".into(),
            event_type: "billing.invoice.finalized".into(),
            occurred_at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .unwrap()
                .with_timezone(&Utc),
            data: json!({"invoice_id": "inv_1"}),
            summary: "Invoice <inv_1> finalized & sent".into(),
        }
    }

    #[test]
    fn a_generic_webhook_is_signed_with_the_standard_headers() {
        let secret = WebhookSecret::generate();
        let channel = Channel::Webhook {
            url: "https://example.com/hook".into(),
            secrets: vec![secret.clone()],
        };
        let request = channel.prepare(&message(), 1_767_322_000);
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .unwrap()
        };
        assert_eq!(header("webhook-id"), "msg_1");
        assert_eq!(header("webhook-timestamp"), "1767322000");
        signature::verify(
            &[secret],
            "msg_1",
            "1767322000",
            &header("webhook-signature"),
            &request.body,
            1_767_322_000,
            300,
        )
        .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["type"], "billing.invoice.finalized");
        assert_eq!(body["timestamp"], "2026-01-02T03:04:05.000Z");
        assert_eq!(body["data"]["invoice_id"], "inv_1");
    }

    #[test]
    fn slack_gets_text_and_escaped_blocks() {
        let channel = Channel::Slack {
            url: "https://hooks.slack.com/services/T/B/X".into(),
        };
        let request = channel.prepare(&message(), 0);
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["text"], "Invoice <inv_1> finalized & sent");
        assert_eq!(
            body["blocks"][0]["text"]["text"],
            "Invoice &lt;inv_1&gt; finalized &amp; sent"
        );
        assert!(
            !request
                .headers
                .iter()
                .any(|(key, _)| key.starts_with("webhook-"))
        );
    }

    #[test]
    fn telegram_hides_the_token_from_the_display_url() {
        let channel = Channel::Telegram {
            api_base: "https://api.telegram.org/".into(),
            bot_token: "123:abc-DEF".into(),
            chat_id: "-1001".into(),
        };
        channel.validate().unwrap();
        let request = channel.prepare(&message(), 0);
        assert_eq!(
            request.url,
            "https://api.telegram.org/bot123:abc-DEF/sendMessage"
        );
        assert!(!request.display_url.contains("abc-DEF"));
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["chat_id"], "-1001");
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .starts_with("Invoice <inv_1>")
        );
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let secrets = vec![WebhookSecret::generate()];
        let cases = [
            (
                Channel::Webhook {
                    url: "ftp://x".into(),
                    secrets: secrets.clone(),
                },
                "url",
            ),
            (
                Channel::Webhook {
                    url: "not a url".into(),
                    secrets: secrets.clone(),
                },
                "url",
            ),
            (
                Channel::Webhook {
                    url: "https://u:p@x.com/".into(),
                    secrets: secrets.clone(),
                },
                "url",
            ),
            (
                Channel::Webhook {
                    url: "https://x.com/".into(),
                    secrets: vec![],
                },
                "secret",
            ),
            (
                Channel::Slack {
                    url: "mailto:a@b".into(),
                },
                "url",
            ),
            (
                Channel::Telegram {
                    api_base: "https://api.telegram.org".into(),
                    bot_token: "nope".into(),
                    chat_id: "1".into(),
                },
                "telegram_bot_token",
            ),
            (
                Channel::Telegram {
                    api_base: "https://api.telegram.org".into(),
                    bot_token: "1:a".into(),
                    chat_id: "chat".into(),
                },
                "telegram_chat_id",
            ),
        ];
        for (channel, field) in cases {
            assert_eq!(channel.validate().unwrap_err().field, field, "{channel:?}");
        }
    }
}
