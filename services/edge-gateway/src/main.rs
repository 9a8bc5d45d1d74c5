//! The edge gateway binary: load config (`--check-config <file>` only checks it), start telemetry, serve until a signal.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use keel_edge_gateway::{Application, Loaded, descriptors};

#[tokio::main]
async fn main() -> ExitCode {
    let loaded: Loaded = match keel_kernel::cli::load_config("edge-gateway") {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("edge-gateway: configuration error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let _telemetry =
        match keel_kernel::telemetry::init(&loaded.config.service, &loaded.config.telemetry) {
            Ok(guard) => guard,
            Err(err) => {
                eprintln!("edge-gateway: {err}");
                return ExitCode::FAILURE;
            }
        };
    let pool = match descriptors::pool(&[]) {
        Ok(pool) => pool,
        Err(err) => {
            eprintln!("edge-gateway: the built-in descriptors do not load: {err}");
            return ExitCode::FAILURE;
        }
    };
    match Application::build(loaded, pool).await {
        Ok(app) => {
            app.run_until_signal().await;
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "edge gateway failed to start");
            eprintln!("edge-gateway: {err}");
            ExitCode::FAILURE
        }
    }
}
