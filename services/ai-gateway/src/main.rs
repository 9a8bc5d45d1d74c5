//! The ai-gateway binary: load config, start telemetry, serve until a signal.
#![forbid(unsafe_code)]

use keel_ai_gateway::Settings;
use keel_kernel::config::{self, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config<Settings> = Config::load(&config::path_from_args("ai-gateway"))?;
    let _telemetry = keel_kernel::telemetry::init(&config.service, &config.telemetry)?;
    let running = keel_ai_gateway::build(config).await?;
    running.run_until_signal().await?;
    Ok(())
}
