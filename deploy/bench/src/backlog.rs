//! `backlog`: a queue whose workers were away. Queues N noop jobs with no worker running,
//! then starts one worker for the queue and measures how fast it drains, how much memory
//! Redis needs meanwhile (PostgreSQL holds the backlog, Redis only a window), and whether
//! the worker ever restarted.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use orderly_core::redis_conn::RedisConn;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};

use orderly_db::sql::stmt;

use crate::pipeline::{connect, scalar};

/// Arguments of `backlog`.
#[derive(Debug, clap::Args)]
pub struct BacklogArgs {
    /// Jobs to queue before the worker starts.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// The `orderly-worker` binary to start.
    #[arg(long)]
    worker_bin: String,
}

async fn redis_memory(conn: &mut RedisConn) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

async fn queue_left(db: &DatabaseConnection) -> anyhow::Result<bool> {
    Ok(scalar(db, &orderly_bench::NOOPS_DRAINED, vec![]).await? > 0.0)
}

/// Runs the measurement.
pub async fn backlog(args: BacklogArgs) -> anyhow::Result<Value> {
    let db = connect(4).await?;
    let redis_url = std::env::var("REDIS_URL").context("REDIS_URL is not set")?;
    let prefix = std::env::var("REDIS_PREFIX").unwrap_or_else(|_| "orderly".into());
    let mut redis = RedisConn::open(&redis_url).await?;
    let keys = format!(
        "{{{}}}",
        orderly_core::redis_conn::key(&prefix, &["bookings"])
    );
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let mut queued = 0;
    while queued < args.count {
        let n = (args.count - queued).min(100_000);
        db.execute_raw(stmt(
            &orderly_bench::BACKLOG_NOOPS,
            vec![
                tag.clone().into(),
                (queued as i64).into(),
                ((queued + n - 1) as i64).into(),
            ],
        ))
        .await?;
        queued += n;
    }
    let baseline = redis_memory(&mut redis).await?;
    let mut worker = Command::new(&args.worker_bin)
        .env("WORKER_QUEUES", "bookings")
        .stdout(Stdio::null())
        .spawn()
        .context("starting orderly-worker")?;
    let started = Instant::now();
    let (mut peak, mut most_held) = (baseline, 0u64);
    let mut last_check = Instant::now() - Duration::from_secs(1);
    loop {
        peak = peak.max(redis_memory(&mut redis).await?);
        let held: u64 = redis::cmd("HLEN")
            .arg(format!("{keys}:data"))
            .query_async(&mut redis)
            .await?;
        most_held = most_held.max(held);
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            if !queue_left(&db).await? {
                break;
            }
            anyhow::ensure!(
                worker.try_wait()?.is_none(),
                "the worker exited while draining"
            );
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(3600),
                "the backlog did not drain within an hour"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let queue_workers: u64 = redis::cmd("ZCARD")
        .arg(format!("{keys}:workers"))
        .query_async(&mut redis)
        .await?;
    let alive = worker.try_wait()?.is_none();
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let _ = worker.wait();
    let like = format!("noop:{tag}:%");
    let done = scalar(&db, &orderly_bench::DONE_LIKE, vec![like.clone().into()]).await?;
    anyhow::ensure!(
        done as u64 == args.count,
        "{} of {} jobs ended other than done",
        args.count - done as u64,
        args.count
    );
    let seconds = scalar(&db, &orderly_bench::SPAN_LIKE, vec![like.into()]).await?;
    Ok(json!({
        "jobs": args.count,
        "seconds": seconds,
        "jobs_per_s": args.count as f64 / seconds.max(0.001),
        "redis_used_memory_baseline_mb": baseline as f64 / 1e6,
        "redis_used_memory_peak_mb": peak as f64 / 1e6,
        "most_tasks_in_redis": most_held,
        "queue_worker_incarnations": queue_workers,
        "worker_alive_at_end": alive,
    }))
}
