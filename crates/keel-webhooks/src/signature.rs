//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is the
//! base64 (standard alphabet, padded) HMAC-SHA256 of it under the secret's raw bytes, sent as
//! `v1,<signature>`. Secrets are shown to people as `whsec_<base64 of the key>`. While a secret is
//! being rotated both the old and the new one are valid: the sender signs with each and sends the
//! signatures space-separated, and a receiver accepts the message if any one matches.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

const SECRET_PREFIX: &str = "whsec_";
/// The spec asks for keys of 24 to 64 bytes; 32 matches SHA-256's block of security.
const GENERATED_KEY_BYTES: usize = 32;
const MIN_KEY_BYTES: usize = 24;
const MAX_KEY_BYTES: usize = 64;

/// A signing key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("WebhookSecret(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("a webhook secret must look like whsec_<base64>")]
    MalformedSecret,
    #[error(
        "a webhook secret must hold {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, this one holds {0}"
    )]
    SecretLength(usize),
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a number of seconds")]
    MalformedTimestamp,
    #[error("webhook-timestamp is {0} s away from now, beyond the tolerance")]
    TimestampOutOfTolerance(i64),
    #[error("no signature in webhook-signature matches")]
    NoMatchingSignature,
}

impl WebhookSecret {
    /// A fresh random secret.
    pub fn generate() -> WebhookSecret {
        let mut key = vec![0_u8; GENERATED_KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        WebhookSecret { key }
    }

    /// Reads `whsec_<base64>`. The prefix is optional, as in the reference libraries; the key
    /// must be 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<WebhookSecret, SignatureError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .unwrap_or(text.trim());
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SignatureError::MalformedSecret)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SignatureError::SecretLength(key.len()));
        }
        Ok(WebhookSecret { key })
    }

    /// `whsec_<base64>`, the form shown to the endpoint's owner once.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
    fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

/// The `webhook-signature` header value: `v1,<sig>` for each secret, space-separated.
pub fn sign(secrets: &[WebhookSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| {
            format!(
                "v1,{}",
                STANDARD.encode(secret.signature(id, timestamp, body))
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a received message as a receiver would: the timestamp within `tolerance_seconds` of
/// `now` (both directions, against replays and clock games), and at least one `v1` signature in
/// the header made with one of `secrets`. Comparisons are constant-time.
pub fn verify(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    if id.is_empty() {
        return Err(SignatureError::MissingHeader(HEADER_ID));
    }
    if signature_header.trim().is_empty() {
        return Err(SignatureError::MissingHeader(HEADER_SIGNATURE));
    }
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::MalformedTimestamp)?;
    let skew = now - timestamp;
    if skew.abs() > tolerance_seconds {
        return Err(SignatureError::TimestampOutOfTolerance(skew));
    }
    let expected: Vec<[u8; 32]> = secrets
        .iter()
        .map(|secret| secret.signature(id, timestamp, body))
        .collect();
    for candidate in signature_header.split_whitespace() {
        let Some(("v1", encoded)) = candidate.split_once(',') else {
            continue; // other schemes (v1a: asymmetric) are not ours to check
        };
        let Ok(received) = STANDARD.decode(encoded) else {
            continue;
        };
        if expected
            .iter()
            .any(|expected| bool::from(expected.as_slice().ct_eq(&received)))
        {
            return Ok(());
        }
    }
    Err(SignatureError::NoMatchingSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signing_reproduces_the_published_standard_webhooks_vector() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(
            sign(&[secret], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
    }

    #[test]
    fn the_published_vector_verifies_and_any_change_breaks_it() {
        let secrets = [WebhookSecret::parse(VECTOR_SECRET).unwrap()];
        let ts = VECTOR_TIMESTAMP.to_string();
        let now = VECTOR_TIMESTAMP + 10;
        verify(
            &secrets,
            VECTOR_ID,
            &ts,
            VECTOR_SIGNATURE,
            VECTOR_BODY,
            now,
            300,
        )
        .unwrap();
        assert_eq!(
            verify(
                &secrets,
                VECTOR_ID,
                &ts,
                VECTOR_SIGNATURE,
                br#"{"test": 2432232315}"#,
                now,
                300
            ),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            verify(
                &secrets,
                "msg_other",
                &ts,
                VECTOR_SIGNATURE,
                VECTOR_BODY,
                now,
                300
            ),
            Err(SignatureError::NoMatchingSignature)
        );
        let other_secret = [WebhookSecret::generate()];
        assert_eq!(
            verify(
                &other_secret,
                VECTOR_ID,
                &ts,
                VECTOR_SIGNATURE,
                VECTOR_BODY,
                now,
                300
            ),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_refused_both_ways() {
        let secrets = [WebhookSecret::parse(VECTOR_SECRET).unwrap()];
        let ts = VECTOR_TIMESTAMP.to_string();
        for now in [VECTOR_TIMESTAMP + 301, VECTOR_TIMESTAMP - 301] {
            assert!(matches!(
                verify(
                    &secrets,
                    VECTOR_ID,
                    &ts,
                    VECTOR_SIGNATURE,
                    VECTOR_BODY,
                    now,
                    300
                ),
                Err(SignatureError::TimestampOutOfTolerance(_))
            ));
        }
        assert_eq!(
            verify(
                &secrets,
                VECTOR_ID,
                "12a",
                VECTOR_SIGNATURE,
                VECTOR_BODY,
                VECTOR_TIMESTAMP,
                300
            ),
            Err(SignatureError::MalformedTimestamp)
        );
    }

    #[test]
    fn during_rotation_both_signatures_are_sent_and_either_secret_verifies() {
        let old = WebhookSecret::generate();
        let new = WebhookSecret::generate();
        let old_copy = old.clone();
        let header = sign(&[new.clone(), old.clone()], "msg_1", 1_700_000_000, b"{}");
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|part| part.starts_with("v1,")));
        for receiver_knows in [old, new] {
            verify(
                &[receiver_knows],
                "msg_1",
                "1700000000",
                &header,
                b"{}",
                1_700_000_000,
                300,
            )
            .unwrap();
        }
        // Unknown schemes and garbage beside a good signature are skipped, not fatal.
        let noisy = format!("v1a,abc v1,%%% {header}");
        verify(
            &[old_copy],
            "msg_1",
            "1700000000",
            &noisy,
            b"{}",
            1_700_000_000,
            300,
        )
        .unwrap();
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let secret = WebhookSecret::generate();
        let shown = secret.expose();
        assert!(shown.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&shown).unwrap(), secret);
        assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SignatureError::MalformedSecret)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ="),
            Err(SignatureError::SecretLength(5))
        );
        // Without the prefix, as the reference libraries allow.
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    }
}
