//! `orderly-bench`: the measurements behind `deploy/bench.sh`. Each subcommand prints one
//! JSON object with its figures; the script assembles the table.

mod backlog;
mod cpu;
mod flow;
mod http;
mod pipeline;
mod report;
mod stats;

use clap::{Parser, Subcommand};

/// Orderly's benchmark tool.
#[derive(Debug, Parser)]
#[command(name = "orderly-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Registers customers and a provider and creates listings; writes them to a file.
    Setup(http::SetupArgs),
    /// POST /api/v1/bookings from many connections, every response checked.
    Bookings(http::LoadArgs),
    /// GET /api/v1/bookings/{id} from many connections, every response checked.
    GetBooking(http::LoadArgs),
    /// Bookings while a worker drains, then the drain; work per completed booking.
    Flow(flow::FlowArgs),
    /// PostgreSQL's durability settings.
    Durability,
    /// Queues N jobs in one transaction and measures how fast the workers drain them.
    Drain(pipeline::DrainArgs),
    /// Enqueues N jobs through the outbox from one process (grouped, one per transaction, or bulk).
    Enqueue(pipeline::EnqueueArgs),
    /// Enqueues jobs at a light, steady rate and measures commit-to-start latency.
    Latency(pipeline::LatencyArgs),
    /// Books with a short hold and no payment, and measures how late expiry runs.
    Expiry(pipeline::ExpiryArgs),
    /// Queues N jobs with no worker running, then measures one worker draining them.
    Backlog(backlog::BacklogArgs),
    /// Prints the table of results against the targets.
    Report(report::ReportArgs),
}

/// Runs an HTTP load and adds `cpu_ms_per_request`: the machine's CPU time per successful
/// request, by program (see [`cpu`]).
async fn with_cpu(
    load: impl Future<Output = anyhow::Result<serde_json::Value>>,
) -> anyhow::Result<serde_json::Value> {
    let before = cpu::snapshot();
    let mut result = load.await?;
    let after = cpu::snapshot();
    let ok = result["ok"].as_f64().unwrap_or(0.0);
    result["cpu_ms_per_request"] = cpu::per_unit(&before, &after, ok);
    Ok(result)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match Cli::parse().command {
        Command::Setup(args) => http::setup(args).await?,
        Command::Bookings(args) => with_cpu(http::bookings(args)).await?,
        Command::GetBooking(args) => with_cpu(http::get_booking(args)).await?,
        Command::Flow(args) => flow::flow(args).await?,
        Command::Durability => flow::durability().await?,
        Command::Drain(args) => pipeline::drain(args).await?,
        Command::Enqueue(args) => pipeline::enqueue(args).await?,
        Command::Latency(args) => pipeline::latency(args).await?,
        Command::Expiry(args) => pipeline::expiry(args).await?,
        Command::Backlog(args) => backlog::backlog(args).await?,
        Command::Report(args) => serde_json::Value::String(report::report(args)?),
    };
    #[allow(clippy::print_stdout)] // the tool's output
    match result {
        serde_json::Value::String(table) => print!("{table}"),
        other => println!("{other}"),
    }
    Ok(())
}
