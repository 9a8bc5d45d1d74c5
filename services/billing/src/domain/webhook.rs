//! Payment-provider webhooks: the Stripe-style signature (`t=<unix>,v1=<hex>`, HMAC-SHA256 over
//! `"{t}.{body}"`) and the event payload billing understands.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use keel_kernel::Error;
use serde::Deserialize;
use sha2::Sha256;

/// Check `header` against `payload` with any of `secrets` (several during a rotation), at most
/// `tolerance_secs` away from `now`. AUTHN otherwise; the message never says which secret or
/// signature came close. Comparison is constant-time (`Mac::verify_slice`).
pub fn verify_signature(
    header: &str,
    payload: &[u8],
    secrets: &[String],
    now: DateTime<Utc>,
    tolerance_secs: i64,
) -> Result<(), Error> {
    let malformed = || Error::unauthenticated("the webhook signature header is malformed");
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or_else(malformed)?;
        match key {
            "t" => timestamp = Some(value.parse().map_err(|_| malformed())?),
            "v1" => signatures.push(hex::decode(value).map_err(|_| malformed())?),
            // Other schemes (Stripe's v0 test signatures) are ignored, as Stripe's libraries do.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(malformed)?;
    if signatures.is_empty() {
        return Err(malformed());
    }
    if (now.timestamp() - timestamp).abs() > tolerance_secs {
        return Err(Error::unauthenticated(
            "the webhook signature's timestamp is outside the tolerance",
        ));
    }
    for secret in secrets {
        for signature in &signatures {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .map_err(|err| Error::internal(anyhow::anyhow!("hmac key: {err}")))?;
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(payload);
            if mac.verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(Error::unauthenticated(
        "the webhook signature does not verify",
    ))
}

/// The header value a provider would send for `payload` signed with `secret` at `timestamp`
/// (tests, the bench and the README's examples).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> Result<String, Error> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|err| Error::internal(anyhow::anyhow!("hmac key: {err}")))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    Ok(format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// A webhook event, in Stripe's shape:
/// `{"id": "evt_1", "type": "invoice.paid", "data": {"object": {"amount_paid": 2900,
///   "metadata": {"keel_tenant_id": "...", "keel_invoice_id": "..."}}}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: WebhookData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookData {
    pub object: WebhookObject,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookObject {
    /// Minor units paid (invoice.paid); the invoice's total when absent.
    #[serde(default)]
    pub amount_paid: Option<i64>,
    #[serde(default)]
    pub metadata: WebhookMetadata,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebhookMetadata {
    #[serde(default)]
    pub keel_tenant_id: String,
    #[serde(default)]
    pub keel_invoice_id: String,
}

/// The event types billing acts on; others are acknowledged and recorded without effect.
pub const INVOICE_PAID: &str = "invoice.paid";
pub const INVOICE_PAYMENT_FAILED: &str = "invoice.payment_failed";

impl WebhookEvent {
    pub fn parse(payload: &[u8]) -> Result<WebhookEvent, Error> {
        let event: WebhookEvent = serde_json::from_slice(payload)
            .map_err(|err| Error::invalid("payload", format!("is not a webhook event: {err}")))?;
        if event.id.is_empty() || event.id.len() > 255 {
            return Err(Error::invalid(
                "payload",
                "`id` must be 1 to 255 characters",
            ));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_any_active_secret_and_only_in_time() {
        let now = Utc::now();
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(body, "new", now.timestamp()).unwrap();
        let secrets = vec!["old".to_owned(), "new".to_owned()];
        assert!(verify_signature(&header, body, &secrets, now, 300).is_ok());
        assert!(verify_signature(&header, b"{}", &secrets, now, 300).is_err());
        assert!(verify_signature(&header, body, &["old".to_owned()], now, 300).is_err());
        let later = now + chrono::Duration::seconds(301);
        assert!(verify_signature(&header, body, &secrets, later, 300).is_err());
        assert!(verify_signature("garbage", body, &secrets, now, 300).is_err());
    }
}
