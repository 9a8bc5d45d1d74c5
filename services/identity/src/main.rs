//! `keel-identity --config config/identity.yaml`: load config, start telemetry, serve until a
//! signal. Everything else is in the library, so tests run exactly what this runs.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use keel_identity::settings::IdentitySettings;
use keel_kernel::config::{self, Config};
use keel_kernel::telemetry;

const SERVICE: &str = "identity";

#[tokio::main]
async fn main() -> ExitCode {
    let path = config::path_from_args(SERVICE);
    let config = match Config::<IdentitySettings>::load(&path) {
        Ok(config) => config,
        Err(err) => {
            // No subscriber yet: stderr is the only place this can go.
            eprintln!("{SERVICE}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let _telemetry = match telemetry::init(&config.service, &config.telemetry) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("{SERVICE}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let running = match keel_identity::app::build(config).await {
        Ok(running) => running,
        Err(err) => {
            tracing::error!(error = ?err, "identity failed to start");
            return ExitCode::FAILURE;
        }
    };
    match running.run_until_signal().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = ?err, "identity stopped with an error");
            ExitCode::FAILURE
        }
    }
}
