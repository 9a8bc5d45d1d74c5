//! The identity service binary: load config (`--check-config <file>` only checks it), start telemetry, serve until a signal.
#![forbid(unsafe_code)]

use keel_identity::Settings;
use keel_kernel::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config<Settings> = keel_kernel::cli::load_config("identity")?;
    let _telemetry = keel_kernel::telemetry::init(&config.service, &config.telemetry)?;
    let running = keel_identity::build(config).await?;
    running.run_until_signal().await?;
    Ok(())
}
