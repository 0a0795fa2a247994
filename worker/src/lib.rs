//! `orderly-worker`: drains the job queues. The queues and their jobs are registered in
//! one place as they are built; this crate owns the process: connections, flags, shutdown.

use clap::Parser;
use orderly_shared::Settings;

/// Flags of `orderly-worker`.
#[derive(Debug, Parser)]
#[command(name = "orderly-worker", version)]
pub struct Cli {}

/// Connects to PostgreSQL and Redis, then runs until SIGTERM or SIGINT.
pub async fn run(_cli: Cli, settings: Settings) -> anyhow::Result<()> {
    let _db = orderly_shared::db::connect(&settings, 10).await?;
    let _redis = orderly_shared::redis_conn::connect(&settings).await?;
    tracing::info!("orderly-worker connected to PostgreSQL and Redis; waiting for jobs");
    orderly_shared::shutdown::signal().await;
    tracing::info!("orderly-worker stopped");
    Ok(())
}

pub mod context;
pub mod execute;
pub mod jobs;
