//! `orderly-worker`: drains the job queues, relays the outbox to them and reconciles the
//! two. Which queues a process drains is a flag, so deployments scale per queue.
//!
//! - [`jobs`]: every job type, in one list;
//! - [`execute`]: one attempt behind PostgreSQL's fence, its timeout, and its end recorded
//!   in the outbox; [`runs`]: the fence, the leases of running jobs and the heartbeat;
//! - [`relay`] and [`reconciler`]: PostgreSQL's outbox to each queue's bounded window in
//!   Redis, and back when Redis or a worker lost a job;
//! - [`storage`], [`queues`] and [`wake`]: Orderly's Redis queue storage behind apalis's
//!   backend traits, and prompt pick-up;
//! - [`backlog`]: each queue's depth and oldest wait, as gauges; `/metrics` on `METRICS_ADDR`.

pub mod backlog;
pub mod completions;
pub mod context;
pub mod deliveries;
pub mod execute;
pub mod job_error;
pub mod jobs;
pub mod queues;
pub mod reconciler;
pub mod relay;
pub mod runs;
pub mod storage;
pub mod transport;
pub mod wake;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::{BackendExt, BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use clap::Parser;
use orderly_core::Settings;
use orderly_core::config::{Binary, WorkerSettings, parse_queue, parse_queue_concurrency};
use orderly_core::telemetry::{meter, metrics_endpoint};
use orderly_domain::templates::Templates;
use orderly_jobs::{Envelope, PolicyOverrides, Queue};
use orderly_providers::Providers;
use tokio_util::sync::CancellationToken;

use crate::context::JobContext;
use crate::queues::{QueueTimings, RedisTransport};
use crate::transport::Transport;

/// Where `/metrics` is served when `METRICS_ADDR` is unset.
pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9091));

/// The most tasks one fetch from Redis takes (and at most a queue's concurrency).
const FETCH_BATCH: usize = 50;

/// Flags of `orderly-worker`. Each overrides its environment variable, read into
/// [`WorkerSettings`] with every other setting.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "orderly-worker", version)]
pub struct Cli {
    /// Queues to drain, comma-separated: bookings, payments, email, sms, reports
    /// (`WORKER_QUEUES`; default all).
    #[arg(long, value_delimiter = ',', value_parser = parse_queue)]
    pub queues: Option<Vec<Queue>>,
    /// Jobs run at once per queue (`WORKER_CONCURRENCY`; 64).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Per-queue overrides of --concurrency, e.g. `email=256,payments=8`
    /// (`WORKER_QUEUE_CONCURRENCY`).
    #[arg(long, value_delimiter = ',', value_parser = parse_queue_concurrency)]
    pub queue_concurrency: Option<Vec<(Queue, usize)>>,
    /// Most PostgreSQL connections this process opens (`WORKER_DB_POOL_SIZE`; 32). Jobs
    /// beyond it wait for a free one; most hold one only for a statement or a short
    /// transaction.
    #[arg(long)]
    pub db_pool_size: Option<u32>,
    /// Do not run the outbox relay and reconciler in this process (`WORKER_NO_RELAY`).
    #[arg(long)]
    pub no_relay: bool,
}

impl Cli {
    /// `settings` with these flags applied over the environment's values.
    pub fn apply(self, mut settings: WorkerSettings) -> WorkerSettings {
        if let Some(queues) = self.queues {
            settings.queues = queues;
        }
        if let Some(n) = self.concurrency {
            settings.concurrency = n;
        }
        if let Some(overrides) = self.queue_concurrency {
            settings.queue_concurrency = overrides;
        }
        if let Some(n) = self.db_pool_size {
            settings.db_pool_size = n;
        }
        if self.no_relay {
            settings.relay = false;
        }
        settings
    }
}

fn timings(settings: &WorkerSettings) -> QueueTimings {
    QueueTimings {
        heartbeat: settings.heartbeat.max(Duration::from_secs(1)),
        missed_heartbeats: settings.missed_heartbeats.max(2),
    }
}

/// Connects, then drains the chosen queues until SIGTERM or SIGINT; running jobs get the
/// grace period to finish.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    run_until(settings, orderly_core::shutdown::signal()).await
}

/// [`run`], stopping when `stop` resolves (tests pass their own).
pub async fn run_until(
    settings: Settings,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Before any connection: a broken template stops start-up, naming the file.
    let templates = Templates::load(&settings.mail.templates_dir)?;
    orderly_domain::messages::check(&templates)?;
    let templates = Arc::new(templates);
    // So is a METRICS_ADDR already taken.
    let exporter = serve_metrics(&settings).await?;
    // The relay, its LISTEN, the reconciler and the batch writers need a few at least.
    let cli = &settings.worker;
    let pool = cli.db_pool_size.max(8);
    let db =
        orderly_core::db::connect_with(&settings, Binary::Worker, pool, Duration::from_secs(30))
            .await?;
    let redis = orderly_core::redis_conn::connect(&settings).await?;
    let providers = Providers::from_settings(&settings)?;
    let host = settings.hostname.clone();
    let instance = format!("{host}-{}-{}", std::process::id(), ulid::Ulid::generate());
    let process = orderly_jobs::workers::WorkerProcess {
        name: instance.clone(),
        host,
        pid: std::process::id(),
        queues: cli
            .queues
            .iter()
            .map(|q| (*q, cli.concurrency_of(*q)))
            .collect(),
    };
    let lease = cli.lease.max(Duration::from_secs(2));
    let runs = runs::Runs::new(db.clone(), process, lease);
    let policies = PolicyOverrides {
        base_delay: cli.retry_base_delay,
        max_attempts: cli.max_attempts,
    };
    let stopping = CancellationToken::new();
    let ctx = JobContext {
        db: db.clone(),
        providers: providers.clone(),
        completions: completions::Completions::start(db.clone()),
        deliveries: deliveries::Deliveries::start(
            db.clone(),
            providers.clone(),
            templates,
            settings.mail.delivery_lease,
        ),
        runs: runs.clone(),
        policies,
        reports: orderly_domain::reports::ReportSettings::from_settings(&settings),
        stopping: stopping.clone(),
    };
    let timings = timings(cli);
    let prefix = settings.redis_prefix.clone();
    let transport: Arc<dyn Transport> =
        Arc::new(RedisTransport::new(redis.clone(), prefix.clone()));
    let background = CancellationToken::new();
    // The first heartbeat before any queue starts: the relay sizes windows from it.
    if let Err(e) = runs.beat(&db).await {
        tracing::warn!(error = %format!("{e:#}"), "first worker heartbeat failed; retrying");
    }
    let mut tasks = vec![tokio::spawn(runs.clone().heartbeat(
        db.clone(),
        timings.heartbeat,
        background.clone(),
    ))];
    if cli.relay {
        let relay_settings = relay::RelaySettings {
            window: orderly_jobs::outbox::Window {
                factor: cli.window_factor.max(1),
                min: cli.window_min.max(1),
                max: cli.window_max.max(1),
                live_within: timings.orphan_after().max(Duration::from_secs(5)),
            },
            ..Default::default()
        };
        tasks.push(tokio::spawn(relay::run(
            db.clone(),
            transport.clone(),
            relay_settings,
            runs.started(),
            background.clone(),
        )));
        let interval = cli.reconcile_interval.max(Duration::from_secs(1));
        let reconciler_settings = reconciler::ReconcilerSettings {
            interval,
            grace: interval,
            holder: instance.clone(),
            policies,
        };
        tasks.push(tokio::spawn(backlog::run(db.clone(), background.clone())));
        tasks.push(tokio::spawn(reconciler::run(
            db.clone(),
            transport.clone(),
            reconciler_settings,
            background.clone(),
        )));
    }

    let mut monitor = Monitor::new();
    for queue in cli.queues.iter().copied() {
        let concurrency = cli.concurrency_of(queue);
        let keys = storage::QueueKeys::new(&prefix, queue);
        let wake = wake::listen(redis.clone(), keys.wake_channel());
        let backend = queues::storage(
            redis.clone(),
            &prefix,
            queue,
            timings,
            concurrency.min(FETCH_BATCH),
        )
        .poll_with_strategy(wake::WakeStrategy::new(wake, Duration::from_secs(1)));
        let ctx = ctx.clone();
        let name = format!("{}-{instance}", queue.as_str());
        monitor = monitor.register(move |run| {
            WorkerBuilder::new(format!("{name}-{run}"))
                .backend(backend.clone())
                .data(ctx.clone())
                .data(queue)
                .concurrency(concurrency)
                .enable_tracing()
                .build(handle)
        });
        tracing::info!(job.queue = queue.as_str(), concurrency, "draining queue");
    }
    let grace = cli.shutdown_grace;
    let monitor = monitor
        .should_restart(|worker, error| {
            tracing::error!(worker = worker.name(), error = %error, "queue worker stopped; restarting");
            true
        })
        .shutdown_timeout(grace);
    tracing::info!(
        worker = %instance,
        orphan_after_s = timings.orphan_after().as_secs(),
        lease_s = lease.as_secs(),
        shutdown_grace_s = grace.as_secs(),
        relay = cli.relay,
        metrics.addr = %exporter.addr(),
        "orderly-worker started"
    );
    let stopping_after_grace = stopping.clone();
    monitor
        .run_with_signal(async move {
            stop.await;
            // Waits for the database give up once the grace period is over.
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                stopping_after_grace.cancel();
            });
            Ok(())
        })
        .await
        .context("the queue workers failed")?;
    stopping.cancel();
    background.cancel();
    for task in tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "a background task of the worker failed");
            metrics::counter!("tasks_failed_total", "task" => "worker_background").increment(1);
        }
    }
    tracing::info!("orderly-worker stopped");
    Ok(())
}

/// Installs the process's metrics registry as the global recorder (every `metrics::` call
/// of the worker and of the provider clients lands in it) and serves it on `METRICS_ADDR`.
async fn serve_metrics(settings: &Settings) -> anyhow::Result<metrics_endpoint::MetricsEndpoint> {
    let handle = match meter::install_global() {
        Ok(handle) => handle,
        Err(e) => {
            // Only when embedded twice in one process: the first registry keeps the metrics.
            tracing::warn!(error = %format!("{e:#}"), "metrics go to the recorder installed earlier");
            meter::prometheus_recorder()?.handle()
        }
    };
    let addr = settings.metrics_addr.unwrap_or(DEFAULT_METRICS_ADDR);
    metrics_endpoint::serve(addr, handle).await
}

/// The apalis handler of every queue: run the job and record its end. It always succeeds
/// as far as Redis is concerned: PostgreSQL holds the job's end, and any copy of the task
/// left in Redis is fenced out.
async fn handle(
    envelope: Envelope,
    ctx: Data<JobContext>,
    queue: Data<Queue>,
) -> Result<(), BoxDynError> {
    execute::execute((*ctx).clone(), queue.as_str(), envelope).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_environment_and_leave_the_rest() {
        let vars = [
            ("DATABASE_URL", "postgres://u@127.0.0.1:5432/db"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("WORKER_QUEUES", "bookings,payments"),
            ("WORKER_CONCURRENCY", "7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let from_env = Settings::from_map(&vars).unwrap().worker;
        let cli = Cli::parse_from(["orderly-worker", "--queues", "email", "--no-relay"]);
        let applied = cli.apply(from_env);
        assert_eq!(applied.queues, vec![Queue::Email]);
        assert!(!applied.relay);
        assert_eq!(
            applied.concurrency, 7,
            "no flag: the environment's value stays"
        );
        let refused = Cli::try_parse_from(["orderly-worker", "--queues", "email,pigeons"]);
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("unknown queue `pigeons`")
        );
    }
}
