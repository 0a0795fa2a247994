//! `orderly-worker`: drains the job queues, relays the outbox to them and reconciles the
//! two. Which queues a process drains is a flag, so deployments scale per queue.
//!
//! - [`jobs`]: every job type, in one list;
//! - [`execute`]: one attempt behind PostgreSQL's fence, its timeout, and its end recorded
//!   in the outbox; [`runs`]: the fence, the leases of running jobs and the heartbeat;
//! - [`relay`] and [`reconciler`]: PostgreSQL's outbox to each queue's bounded window in
//!   Redis, and back when Redis or a worker lost a job;
//! - [`storage`], [`queues`] and [`wake`]: Orderly's Redis queue storage behind apalis's
//!   backend traits, and prompt pick-up.

pub mod completions;
pub mod context;
pub mod deliveries;
pub mod execute;
pub mod jobs;
pub mod queues;
pub mod reconciler;
pub mod relay;
pub mod runs;
pub mod storage;
pub mod transport;
pub mod wake;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::{BackendExt, BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use clap::Parser;
use orderly_shared::Settings;
use orderly_shared::jobs::{Envelope, Queue};
use orderly_shared::providers::Providers;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::context::{JobContext, PolicyOverrides};
use crate::queues::{QueueTimings, RedisTransport};
use crate::transport::Transport;

/// The most tasks one fetch from Redis takes (and at most a queue's concurrency).
const FETCH_BATCH: usize = 50;

/// Flags of `orderly-worker` (each can also be set in the environment).
#[derive(Debug, Clone, Parser)]
#[command(name = "orderly-worker", version)]
pub struct Cli {
    /// Queues to drain, comma-separated: bookings, payments, email, sms, reports.
    #[arg(long, env = "WORKER_QUEUES", value_delimiter = ',', default_value = "bookings,payments,email,sms,reports", value_parser = parse_queue)]
    pub queues: Vec<Queue>,
    /// Jobs run at once per queue.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,
    /// Per-queue overrides of --concurrency, e.g. `email=256,payments=8`.
    #[arg(long, env = "WORKER_QUEUE_CONCURRENCY", value_delimiter = ',', value_parser = parse_override)]
    pub queue_concurrency: Vec<(Queue, usize)>,
    /// Most PostgreSQL connections this process opens. Jobs beyond it wait for a free one;
    /// most jobs hold one only for a statement or a short transaction.
    #[arg(long, env = "WORKER_DB_POOL_SIZE", default_value_t = 32)]
    pub db_pool_size: u32,
    /// Seconds between a worker's heartbeats.
    #[arg(long, env = "WORKER_HEARTBEAT_SECONDS", default_value_t = 3)]
    pub heartbeat_seconds: u64,
    /// Missed heartbeats after which a dead worker's jobs go to others.
    #[arg(long, env = "WORKER_MISSED_HEARTBEATS", default_value_t = 10)]
    pub missed_heartbeats: usize,
    /// Seconds that running jobs get to finish after SIGTERM.
    #[arg(long, env = "WORKER_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
    /// Seconds a running job's lease lasts without renewal (the heartbeat renews it); a
    /// job whose worker stops renewing is handed on after it, counting an attempt.
    #[arg(long, env = "OUTBOX_LEASE_SECONDS", default_value_t = 30)]
    pub lease_seconds: u64,
    /// Seconds between reconciliations of the outbox with Redis.
    #[arg(long, env = "RECONCILE_INTERVAL_SECONDS", default_value_t = 5)]
    pub reconcile_interval_seconds: u64,
    /// Each queue is filled in Redis up to this multiple of its live workers' concurrency.
    #[arg(long, env = "QUEUE_WINDOW_FACTOR", default_value_t = 2)]
    pub window_factor: u32,
    /// The smallest window of a queue (also while none of its workers is live).
    #[arg(long, env = "QUEUE_WINDOW_MIN", default_value_t = 64)]
    pub window_min: u32,
    /// The largest window of a queue.
    #[arg(long, env = "QUEUE_WINDOW_MAX", default_value_t = 4096)]
    pub window_max: u32,
    /// Overrides the first retry delay of every job type, in milliseconds (delays still
    /// double per attempt).
    #[arg(long, env = "JOB_RETRY_BASE_DELAY_MS")]
    pub retry_base_delay_ms: Option<u64>,
    /// Overrides the attempts (in all) of every job type.
    #[arg(long, env = "JOB_MAX_ATTEMPTS")]
    pub max_attempts: Option<u32>,
    /// Do not run the outbox relay and reconciler in this process.
    #[arg(long, env = "WORKER_NO_RELAY")]
    pub no_relay: bool,
}

fn parse_queue(name: &str) -> Result<Queue, String> {
    Queue::parse(name.trim()).ok_or_else(|| {
        format!("unknown queue `{name}` (expected bookings, payments, email, sms or reports)")
    })
}

fn parse_override(item: &str) -> Result<(Queue, usize), String> {
    let (queue, n) = item
        .split_once('=')
        .ok_or_else(|| format!("expected QUEUE=N, got `{item}`"))?;
    let n: usize = n
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a positive number in `{item}`"))?;
    Ok((parse_queue(queue)?, n))
}

impl Cli {
    fn timings(&self) -> QueueTimings {
        QueueTimings {
            heartbeat: Duration::from_secs(self.heartbeat_seconds.max(1)),
            missed_heartbeats: self.missed_heartbeats.max(2),
        }
    }

    fn concurrency_of(&self, queue: Queue) -> usize {
        let overrides: HashMap<Queue, usize> = self.queue_concurrency.iter().copied().collect();
        overrides
            .get(&queue)
            .copied()
            .unwrap_or(self.concurrency)
            .max(1)
    }
}

/// Connects, then drains the chosen queues until SIGTERM or SIGINT; running jobs get the
/// grace period to finish.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    run_until(cli, settings, orderly_shared::shutdown::signal()).await
}

/// [`run`], stopping when `stop` resolves (tests pass their own).
pub async fn run_until(
    cli: Cli,
    settings: Settings,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The relay, its LISTEN, the reconciler and the batch writers need a few at least.
    let pool = cli.db_pool_size.max(8);
    let db = orderly_shared::db::connect_with(&settings, pool, Duration::from_secs(30)).await?;
    let redis = orderly_shared::redis_conn::connect(&settings).await?;
    let client = redis::Client::open(settings.redis_url.expose_secret()).context("REDIS_URL")?;
    let providers = Providers::from_settings(&settings)?;
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    let instance = format!("{host}-{}-{}", std::process::id(), ulid::Ulid::generate());
    let process = orderly_shared::jobs::workers::WorkerProcess {
        name: instance.clone(),
        host,
        pid: std::process::id(),
        queues: cli
            .queues
            .iter()
            .map(|q| (*q, cli.concurrency_of(*q)))
            .collect(),
    };
    let lease = Duration::from_secs(cli.lease_seconds.max(2));
    let runs = runs::Runs::new(db.clone(), process, lease);
    let policies = PolicyOverrides {
        base_delay: cli.retry_base_delay_ms.map(Duration::from_millis),
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
            settings.mail.delivery_lease,
        ),
        runs: runs.clone(),
        policies,
        stopping: stopping.clone(),
    };
    let timings = cli.timings();
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
    if !cli.no_relay {
        let relay_settings = relay::RelaySettings {
            window: orderly_shared::jobs::outbox::Window {
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
        let interval = Duration::from_secs(cli.reconcile_interval_seconds.max(1));
        let reconciler_settings = reconciler::ReconcilerSettings {
            interval,
            grace: interval,
            holder: instance.clone(),
            policies,
        };
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
        let wake = wake::listen(client.clone(), keys.wake_channel());
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
    let grace = Duration::from_secs(cli.shutdown_grace_seconds);
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
        relay = !cli.no_relay,
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
        let _ = task.await;
    }
    tracing::info!("orderly-worker stopped");
    Ok(())
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
