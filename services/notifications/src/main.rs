//! The notifications service binary: load config, start telemetry, serve until a signal.
#![forbid(unsafe_code)]

use keel_kernel::config::{self, Config};
use keel_notifications::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config<Settings> = Config::load(&config::path_from_args("notifications"))?;
    let _telemetry = keel_kernel::telemetry::init(&config.service, &config.telemetry)?;
    let running = keel_notifications::build(config).await?;
    running.run_until_signal().await?;
    Ok(())
}
