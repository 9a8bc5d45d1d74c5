//! NATS JetStream: the connection and the one `EVENTS` stream every service publishes to.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::config::NatsConfig;
use crate::error::Error;

/// Connect to NATS. The client reconnects on its own forever; while disconnected, publishes are
/// buffered and their acks time out, which the outbox relay turns into a retry.
pub async fn connect(service: &str, config: &NatsConfig) -> Result<async_nats::Client, Error> {
    async_nats::ConnectOptions::new()
        .name(service)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .connect(config.url.as_str())
        .await
        .map_err(|err| Error::unavailable("cannot connect to NATS").with_cause(err))
}

/// The stream config: limits retention, file storage, every subject under the prefix, and a
/// duplicate window wider than the relay's longest retry horizon so re-publishes de-duplicate.
pub fn stream_config(config: &NatsConfig) -> stream::Config {
    let max_age = Duration::from_secs(config.max_age_days * 24 * 3600);
    stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age,
        duplicate_window: Duration::from_secs(config.duplicate_window_secs).min(max_age),
        num_replicas: config.replicas,
        ..Default::default()
    }
}

/// Create the stream, or bring an existing one's config up to date (get_or_create would not).
pub async fn ensure_stream(js: &jetstream::Context, config: &NatsConfig) -> Result<(), Error> {
    js.create_or_update_stream(stream_config(config))
        .await
        .map(|_| ())
        .map_err(|err| Error::unavailable("cannot create the JetStream stream").with_cause(err))
}

/// The subject of an event type `<context>.<aggregate>.<verb>`.
pub fn subject_for(config: &NatsConfig, event_type: &str) -> String {
    format!("{}.{}", config.subject_prefix, event_type)
}
