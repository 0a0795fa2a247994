//! `orderly-scheduler`: periodic work. It enqueues work or makes small idempotent changes,
//! and never runs jobs; this crate owns the process: connections, flags, shutdown.
//!
//! - [`upkeep`]: the sweep of expired holds and the pruning of idempotency keys.

pub mod upkeep;

use clap::Parser;
use orderly_shared::Settings;
use tokio_util::sync::CancellationToken;

/// Flags of `orderly-scheduler`.
#[derive(Debug, Parser)]
#[command(name = "orderly-scheduler", version)]
pub struct Cli {}

/// Connects to PostgreSQL and Redis, then runs the periodic work until SIGTERM or SIGINT.
pub async fn run(_cli: Cli, settings: Settings) -> anyhow::Result<()> {
    let db = orderly_shared::db::connect(&settings, 4).await?;
    let _redis = orderly_shared::redis_conn::connect(&settings).await?;
    tracing::info!(report.cron = %settings.report_cron, report.tz = %settings.report_tz, "orderly-scheduler connected to PostgreSQL and Redis");
    let stop = CancellationToken::new();
    let holder = format!("{}:{}", settings.hostname, std::process::id());
    let upkeep = tokio::spawn(upkeep::run(db, holder, upkeep::EVERY, stop.clone()));
    orderly_shared::shutdown::signal().await;
    stop.cancel();
    let _ = upkeep.await;
    tracing::info!("orderly-scheduler stopped");
    Ok(())
}
