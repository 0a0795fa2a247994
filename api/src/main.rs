//! `orderly-api`: parses flags and runs the library.

use clap::Parser;
use orderly_api::cli::{self, Cli};
use orderly_core::config::Binary;
use orderly_core::{Settings, telemetry};

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Some(done) = cli::run_without_settings(&cli) {
        return match done {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("orderly-api: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let settings = match Settings::from_env(Binary::Api) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("orderly-api: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let _telemetry = telemetry::init("orderly-api", &settings);
    match cli::run(cli, settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "orderly-api failed");
            eprintln!("orderly-api: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
