//! NATS JetStream: the connection and the one `EVENTS` stream every service publishes to.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::config::NatsConfig;
use crate::error::Error;

/// Connect to NATS as the user the URL names (`nats://identity:<password>@host:4222`: each
/// service is its own NATS user, allowed to publish only its own events). The client reconnects
/// on its own forever; while disconnected, publishes are buffered and their acks time out, which
/// the outbox relay turns into a retry.
pub async fn connect(service: &str, config: &NatsConfig) -> Result<async_nats::Client, Error> {
    let invalid = || Error::internal(anyhow::anyhow!("config key `nats.url`: not a NATS URL"));
    let address: async_nats::ServerAddr = config.url.parse().map_err(|_| invalid())?;
    let mut options = async_nats::ConnectOptions::new();
    // async-nats does not send the URL's credentials by itself.
    if let (Some(user), Some(password)) = (address.username(), address.password()) {
        options = options.user_and_password(user.to_owned(), password.to_owned());
    }
    options
        .name(service)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .connect(address)
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

/// Make sure the stream exists with the configured settings: read it first and create or update
/// it only when it is missing or differs. Services run as NATS users that may read the stream but
/// not change it (`keel-provision` or the platform team's admin user does), so in steady state
/// this is one `STREAM.INFO` and never a refused request.
pub async fn ensure_stream(js: &jetstream::Context, config: &NatsConfig) -> Result<(), Error> {
    let wanted = stream_config(config);
    if let Ok(mut stream) = js.get_stream(&wanted.name).await
        && let Ok(info) = stream.info().await
        && same_settings(&info.config, &wanted)
    {
        return Ok(());
    }
    js.create_or_update_stream(wanted)
        .await
        .map(|_| ())
        .map_err(|err| Error::unavailable("cannot create the JetStream stream").with_cause(err))
}

/// The settings this platform manages; anything else an operator set is left alone.
fn same_settings(current: &stream::Config, wanted: &stream::Config) -> bool {
    current.subjects == wanted.subjects
        && current.retention == wanted.retention
        && current.storage == wanted.storage
        && current.max_age == wanted.max_age
        && current.duplicate_window == wanted.duplicate_window
        && current.num_replicas == wanted.num_replicas
}

/// The subject of an event type `<context>.<aggregate>.<verb>`.
pub fn subject_for(config: &NatsConfig, event_type: &str) -> String {
    format!("{}.{}", config.subject_prefix, event_type)
}
