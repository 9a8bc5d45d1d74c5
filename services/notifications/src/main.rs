//! The notifications service binary: load config (`--check-config <file>` only checks it), start telemetry, serve until a signal.
#![forbid(unsafe_code)]

use keel_kernel::config::Config;
use keel_notifications::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config<Settings> = keel_kernel::cli::load_config("notifications")?;
    let _telemetry = keel_kernel::telemetry::init(&config.service, &config.telemetry)?;
    let running = keel_notifications::build(config).await?;
    running.run_until_signal().await?;
    Ok(())
}
