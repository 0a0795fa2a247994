//! `orderly-scheduler`: the cron table. It enqueues work and never does it; this crate owns
//! the process: connections, flags, shutdown.

use clap::Parser;
use orderly_shared::Settings;

/// Flags of `orderly-scheduler`.
#[derive(Debug, Parser)]
#[command(name = "orderly-scheduler", version)]
pub struct Cli {}

/// Connects to PostgreSQL and Redis, then runs until SIGTERM or SIGINT.
pub async fn run(_cli: Cli, settings: Settings) -> anyhow::Result<()> {
    let _db = orderly_shared::db::connect(&settings, 4).await?;
    let _redis = orderly_shared::redis_conn::connect(&settings).await?;
    tracing::info!(report.cron = %settings.report_cron, report.tz = %settings.report_tz, "orderly-scheduler connected to PostgreSQL and Redis");
    orderly_shared::shutdown::signal().await;
    tracing::info!("orderly-scheduler stopped");
    Ok(())
}
