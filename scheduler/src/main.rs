//! `orderly-scheduler`: parses flags and runs the library.

use clap::Parser;
use orderly_core::config::Binary;
use orderly_core::{Settings, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = orderly_scheduler::Cli::parse();
    let settings = match Settings::from_env(Binary::Scheduler) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("orderly-scheduler: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let _telemetry = telemetry::init("orderly-scheduler", &settings);
    match orderly_scheduler::run(cli, settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "orderly-scheduler failed");
            eprintln!("orderly-scheduler: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
