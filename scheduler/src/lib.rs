//! `orderly-scheduler`: Orderly's cron. It runs the table of `orderly_jobs::schedules`
//! (the one place the entries are defined), and for each tick enqueues one job through the
//! outbox; the worker does the work. Several replicas may run: one leads at a time.
//!
//! - [`leader`]: the lease, and the loop that fires ticks while leading;
//! - [`catch_up`]: which ticks are due after a restart, a take-over or an outage;
//! - [`record`]: a tick claimed in `schedule_runs` in one fenced transaction with its job;
//! - [`commands`]: `list` and `run-now`.

pub mod catch_up;
pub mod commands;
pub mod leader;
pub mod record;

use std::io::Write;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use orderly_core::Settings;
use orderly_core::config::Binary;
use orderly_jobs::schedules::{Entry, Table};
use tokio_util::sync::CancellationToken;

/// Where `/metrics` is served without `METRICS_ADDR`.
const DEFAULT_METRICS_ADDR: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9092);

/// Flags of `orderly-scheduler`.
#[derive(Debug, Parser)]
#[command(name = "orderly-scheduler", version)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scheduler: lead (one replica at a time) and fire each tick's job.
    Run,
    /// Show the table: each entry's expression, time zone, next runs and last run, and the leader.
    List,
    /// Enqueue an entry's job now, whatever the table says.
    RunNow {
        /// daily_report, reminders, sweep or retention.
        #[arg(value_parser = commands::parse_entry)]
        entry: Entry,
        /// daily_report only: the day to report (YYYY-MM-DD; default yesterday in
        /// REPORT_TZ). It is recomputed even if it was made.
        #[arg(long)]
        date: Option<NaiveDate>,
    },
}

/// Runs the command.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    let table = Table::from_settings(&settings);
    // A command's answer is written out whole at the end, so that no log line (the logs
    // may share standard output) lands in its middle.
    let mut answer = Vec::new();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => return serve(settings, table).await,
        Command::List => {
            let db = orderly_core::db::connect(&settings, Binary::Scheduler, 1).await?;
            commands::list(&db, &table, &mut answer).await?;
        }
        Command::RunNow { entry, date } => {
            let db = orderly_core::db::connect(&settings, Binary::Scheduler, 1).await?;
            commands::run_now(&db, &table, entry, date, &mut answer).await?;
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&answer)?;
    Ok(out.flush()?)
}

/// Leads or stands by until SIGTERM or SIGINT.
async fn serve(settings: Settings, table: Table) -> anyhow::Result<()> {
    let handle = orderly_core::telemetry::meter::install_global()?;
    let _metrics = orderly_core::telemetry::metrics_endpoint::serve(
        settings.metrics_addr.unwrap_or(DEFAULT_METRICS_ADDR),
        handle,
    )
    .await?;
    let db = orderly_core::db::connect(&settings, Binary::Scheduler, 2)
        .await
        .context("connecting to PostgreSQL")?;
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let holder = format!(
        "{}:{}:{}",
        settings.hostname,
        std::process::id(),
        nonce.get(..6).unwrap_or_default()
    );
    let lease = settings.schedules.lease;
    for scheduled in table.entries() {
        tracing::info!(
            schedule.name = scheduled.entry.name(),
            schedule.cron = scheduled.expression.source(),
            schedule.tz = %scheduled.tz,
            "scheduled"
        );
    }
    tracing::info!(scheduler.holder = %holder, lease_s = lease.as_secs(), "orderly-scheduler started");
    let stop = CancellationToken::new();
    let leader = tokio::spawn(leader::run(db, table, holder, lease, stop.clone()));
    orderly_core::shutdown::signal().await;
    stop.cancel();
    if let Err(e) = leader.await {
        tracing::error!(error = %e, "the scheduler's leader task failed");
        metrics::counter!("tasks_failed_total", "task" => "scheduler_leader").increment(1);
    }
    tracing::info!("orderly-scheduler stopped");
    Ok(())
}
