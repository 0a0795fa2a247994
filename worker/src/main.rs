//! `orderly-worker`: parses flags and runs the library.

use clap::Parser;
use orderly_core::config::Binary;
use orderly_core::{Settings, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = orderly_worker::Cli::parse();
    let mut settings = match Settings::from_env(Binary::Worker) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("orderly-worker: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    settings.worker = cli.apply(settings.worker);
    let _telemetry = telemetry::init("orderly-worker", &settings);
    match orderly_worker::run(settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "orderly-worker failed");
            eprintln!("orderly-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
