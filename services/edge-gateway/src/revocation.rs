//! Revocations identity announces, applied at the edge within a second or two instead of when
//! caches and tokens run out.
//!
//! Identity publishes `identity.session.revoked` (logout, member removal, tenant suspension,
//! refresh-token reuse) and `identity.api_key.revoked`. Every replica follows both with its own
//! ephemeral, ordered JetStream consumer (no acks, nothing durable to clean up: the server drops
//! it when the replica goes away), starting [`RevocationConfig::access_token_ttl_secs`] back so a
//! replica that starts or reconnects learns what was revoked while it was away.
//!
//! A revoked session id is denied until every access token it had can have expired: the events
//! carry no expiry, so that is the access-token lifetime after the event. A revoked API key's
//! cached exchange is dropped, and tokens minted for it are denied the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use keel_kernel::config::NatsConfig;
use keel_kernel::consumer::Event;
use keel_proto::events::v1::EventEnvelope;
use keel_proto::identity::v1::{ApiKeyRevoked, SessionRevoked};
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::config::RevocationConfig;
use crate::gateway::Gateway;

pub const SESSION_REVOKED: &str = "identity.session.revoked";
pub const API_KEY_REVOKED: &str = "identity.api_key.revoked";

/// Denied ids, each until when.
type Denied = Mutex<HashMap<String, Instant>>;

/// Revoked session and API-key ids, remembered until their tokens have expired.
pub struct Revocations {
    remember: Duration,
    sessions: Denied,
    api_keys: Denied,
}

impl Revocations {
    pub fn new(config: &RevocationConfig) -> Revocations {
        Revocations {
            remember: Duration::from_secs(config.access_token_ttl_secs),
            sessions: Mutex::new(HashMap::new()),
            api_keys: Mutex::new(HashMap::new()),
        }
    }

    /// Deny `session_id`'s tokens; `age` is how long ago identity revoked it.
    pub fn revoke_session(&self, session_id: &str, age: Duration) {
        self.deny(&self.sessions, session_id, age);
    }

    /// Deny tokens minted for the API key `key_id`; `age` is how long ago it was revoked.
    pub fn revoke_api_key(&self, key_id: &str, age: Duration) {
        self.deny(&self.api_keys, key_id, age);
    }

    pub fn is_session_revoked(&self, session_id: &str) -> bool {
        is_denied(&self.sessions, session_id)
    }

    pub fn is_api_key_revoked(&self, key_id: &str) -> bool {
        is_denied(&self.api_keys, key_id)
    }

    fn deny(&self, denied: &Denied, id: &str, age: Duration) {
        let Some(left) = self.remember.checked_sub(age) else {
            return;
        };
        let now = Instant::now();
        let mut denied = denied.lock().unwrap_or_else(PoisonError::into_inner);
        // Entries past their time deny nothing; sweep them as the map grows, so it stays as
        // large as one token lifetime's worth of revocations.
        if denied.len() >= 1024 && denied.len().is_power_of_two() {
            denied.retain(|_, until| *until > now);
        }
        denied.insert(id.to_owned(), now + left);
    }
}

fn is_denied(denied: &Denied, id: &str) -> bool {
    denied
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(id)
        .is_some_and(|until| *until > Instant::now())
}

/// Follow both revocation subjects until `shutdown`, reconnecting and recreating the consumers
/// as needed (the client reconnects by itself; an ordered consumer recreates itself on a gap).
pub async fn follow(gateway: Arc<Gateway>, nats: NatsConfig, shutdown: CancellationToken) {
    let client = match keel_kernel::nats::connect(&gateway.service, &nats).await {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "cannot connect to NATS; revocations are not followed");
            return;
        }
    };
    let js = jetstream::new(client);
    let sessions = follow_subject(&gateway, &js, &nats, SESSION_REVOKED, &shutdown);
    let api_keys = follow_subject(&gateway, &js, &nats, API_KEY_REVOKED, &shutdown);
    tokio::join!(sessions, api_keys);
}

async fn follow_subject(
    gateway: &Gateway,
    js: &jetstream::Context,
    nats: &NatsConfig,
    event_type: &str,
    shutdown: &CancellationToken,
) {
    let subject = keel_kernel::nats::subject_for(nats, event_type);
    loop {
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            outcome = consume(gateway, js, nats, &subject) => outcome,
        };
        if let Err(err) = outcome {
            tracing::warn!(%subject, error = %err, "following revocations failed; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn consume(
    gateway: &Gateway,
    js: &jetstream::Context,
    nats: &NatsConfig,
    subject: &str,
) -> Result<(), async_nats::Error> {
    let stream = js.get_stream(&nats.stream).await?;
    let since = unix_nanos().saturating_sub(gateway.revocations.remember.as_nanos() as i128);
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject.to_owned(),
            deliver_policy: consumer::DeliverPolicy::ByStartTime {
                start_time: async_nats::datetime::from_nanos(since)?,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    tracing::info!(%subject, "following revocations");
    while let Some(message) = messages.next().await {
        let message = message?;
        match EventEnvelope::decode(message.payload.clone()) {
            Ok(envelope) => gateway.apply_revocation(&Event {
                subject: message.subject.to_string(),
                envelope,
            }),
            Err(err) => tracing::warn!(%subject, error = %err, "undecodable revocation event"),
        }
    }
    Err("the revocation stream ended".into())
}

impl Gateway {
    /// Apply one revocation event: deny the id and drop what is cached for it.
    pub fn apply_revocation(&self, event: &Event) {
        let age = event
            .envelope
            .occurred_at
            .as_ref()
            .map(|at| {
                let at = i128::from(at.seconds) * 1_000_000_000 + i128::from(at.nanos);
                Duration::from_nanos(u64::try_from(unix_nanos() - at).unwrap_or(0))
            })
            .unwrap_or_default();
        match event.envelope.event_type.as_str() {
            SESSION_REVOKED => match event.payload::<SessionRevoked>() {
                Ok(revoked) => {
                    tracing::debug!(session_id = %revoked.session_id, "session revoked");
                    self.revocations.revoke_session(&revoked.session_id, age);
                }
                Err(err) => tracing::warn!(error = %err, "bad session.revoked payload"),
            },
            API_KEY_REVOKED => match event.payload::<ApiKeyRevoked>() {
                Ok(revoked) => {
                    tracing::debug!(key_id = %revoked.key_id, "API key revoked");
                    self.revocations.revoke_api_key(&revoked.key_id, age);
                    self.auth.forget_api_key(&revoked.key_id);
                }
                Err(err) => tracing::warn!(error = %err, "bad api_key.revoked payload"),
            },
            _ => {}
        }
    }
}

fn unix_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocations(ttl: u64) -> Revocations {
        Revocations::new(&RevocationConfig {
            access_token_ttl_secs: ttl,
        })
    }

    #[test]
    fn a_revoked_session_is_denied_and_others_are_not() {
        let revocations = revocations(900);
        revocations.revoke_session("s1", Duration::ZERO);
        assert!(revocations.is_session_revoked("s1"));
        assert!(!revocations.is_session_revoked("s2"));
        assert!(!revocations.is_api_key_revoked("s1"));
    }

    #[test]
    fn a_revocation_older_than_any_token_denies_nothing() {
        let revocations = revocations(900);
        revocations.revoke_api_key("k1", Duration::from_secs(901));
        assert!(!revocations.is_api_key_revoked("k1"));
        revocations.revoke_api_key("k2", Duration::from_secs(899));
        assert!(revocations.is_api_key_revoked("k2"));
    }
}
