//! Job-pipeline measurements, straight against the database the workers drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use orderly_db::sql::{Sql, stmt};
use orderly_jobs::outbox::NewJob;
use orderly_jobs::{Enqueuer, Job, Noop, outbox, wake};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use uuid::Uuid;

pub(crate) async fn connect(max: u32) -> anyhow::Result<DatabaseConnection> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL is not set")?;
    let mut options = sea_orm::ConnectOptions::new(url);
    // As shared/core/src/db.rs: ping only connections that sat idle long enough to have been dropped.
    options
        .max_connections(max)
        .test_before_acquire_if_idle_for(Duration::from_secs(10))
        .sqlx_logging(false);
    Ok(Database::connect(options).await?)
}

pub(crate) async fn scalar(
    db: &DatabaseConnection,
    sql: &Sql,
    values: Vec<sea_orm::Value>,
) -> anyhow::Result<f64> {
    let row = db
        .query_one_raw(stmt(sql, values))
        .await?
        .context("no row")?;
    Ok(row.try_get_by_index::<Option<f64>>(0)?.unwrap_or(0.0))
}

/// Polls every 20 ms until `sql` (a count) reaches `target`, or `limit` passes.
async fn wait_for(
    db: &DatabaseConnection,
    sql: &Sql,
    values: Vec<sea_orm::Value>,
    target: f64,
    limit: Duration,
) -> anyhow::Result<()> {
    wait_for_every(db, sql, values, target, limit, Duration::from_millis(20)).await
}

/// [`wait_for`], polling every `every`.
async fn wait_for_every(
    db: &DatabaseConnection,
    sql: &Sql,
    values: Vec<sea_orm::Value>,
    target: f64,
    limit: Duration,
    every: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while scalar(db, sql, values.clone()).await? < target {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out waiting for: {}",
            sql.name
        );
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// Arguments of `drain`.
#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    /// `noop` or `send_email`.
    #[arg(long, default_value = "noop")]
    kind: String,
    /// Jobs to queue.
    #[arg(long, default_value_t = 50_000)]
    count: usize,
}

/// Queues `count` jobs in one transaction (visible at once) and times the drain from that
/// commit to the last recorded completion.
pub async fn drain(args: DrainArgs) -> anyhow::Result<Value> {
    let db = connect(4).await?;
    let ids: Vec<Uuid> = (0..args.count).map(|_| Uuid::now_v7()).collect();
    let sql: &Sql = match args.kind.as_str() {
        "noop" => &orderly_bench::DRAIN_NOOP,
        "send_email" => &orderly_bench::DRAIN_SEND_EMAIL,
        other => anyhow::bail!("unknown kind `{other}` (noop or send_email)"),
    };
    let task_ids: Vec<String> = ids.iter().map(|id| format!("{}:{id}", args.kind)).collect();
    db.execute_raw(stmt(sql, vec![ids.clone().into()])).await?;
    wake::relays_now(&db).await?;
    let committed = chrono::Utc::now();
    let started = Instant::now();
    // The machine's CPU from the commit to the last end: what running the jobs cost, by
    // program (the insert is not counted; the polling below costs next to nothing).
    let cpu_before = crate::cpu::snapshot();
    // Polled with a query that the partial indexes answer at once, so that measuring costs
    // the database next to nothing while the worker drains; the figure itself comes from
    // the completion times recorded in the outbox.
    wait_for(
        &db,
        &orderly_bench::DRAINED,
        vec![
            args.kind.clone().into(),
            if args.kind == "noop" {
                "bookings"
            } else {
                "email"
            }
            .into(),
        ],
        1.0,
        Duration::from_secs(600),
    )
    .await?;
    let cpu_after = crate::cpu::snapshot();
    let done = scalar(&db, &orderly_bench::DONE_OF, vec![task_ids.clone().into()]).await?;
    anyhow::ensure!(
        done as usize == args.count,
        "{} of {} jobs ended other than done",
        args.count - done as usize,
        args.count
    );
    if args.kind == "send_email" {
        let sent = scalar(&db, &orderly_bench::SENT_OF, vec![ids.clone().into()]).await?;
        anyhow::ensure!(
            sent as usize == args.count,
            "only {sent} of {} e-mail notifications are marked sent",
            args.count
        );
    }
    let wall = started.elapsed().as_secs_f64();
    let span = scalar(
        &db,
        &orderly_bench::DRAIN_SPAN,
        vec![task_ids.into(), committed.into()],
    )
    .await?;
    let seconds = if span > 0.0 { span } else { wall };
    Ok(json!({
        "kind": args.kind,
        "jobs": args.count,
        "seconds": seconds,
        "jobs_per_s": args.count as f64 / seconds,
        "cpu_ms_per_job": crate::cpu::per_unit(&cpu_before, &cpu_after, args.count as f64),
    }))
}

/// Arguments of `enqueue`.
#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {
    /// Jobs to enqueue.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Concurrent callers (tasks in this one process).
    #[arg(long, default_value_t = 32)]
    concurrency: u32,
    /// `grouped`: each call enqueues one job and waits for its commit, through the
    /// group-committing `Enqueuer`; `transaction`: each job in a transaction of its own;
    /// `bulk`: `enqueue_many` with `--chunk` jobs per transaction.
    #[arg(long, default_value = "grouped")]
    mode: String,
    /// Jobs per transaction in `bulk` mode.
    #[arg(long, default_value_t = 500)]
    chunk: u64,
}

/// Enqueues `count` noop jobs from `concurrency` tasks, in the way `mode` names.
pub async fn enqueue(args: EnqueueArgs) -> anyhow::Result<Value> {
    let db = connect(args.concurrency).await?;
    let enqueuer = Enqueuer::start(db.clone());
    let before = scalar(&db, &orderly_bench::NOOP_ROWS, vec![]).await?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (db, enqueuer, next) = (db.clone(), enqueuer.clone(), next.clone());
            let (count, chunk, mode) = (args.count, args.chunk.max(1), args.mode.clone());
            tokio::spawn(async move {
                match mode.as_str() {
                    "grouped" => {
                        while next.fetch_add(1, Ordering::Relaxed) < count {
                            enqueuer.enqueue(&Noop { id: Uuid::new_v4() }, None).await?;
                        }
                    }
                    "transaction" => {
                        while next.fetch_add(1, Ordering::Relaxed) < count {
                            outbox::enqueue(&db, &Noop { id: Uuid::new_v4() }, None, None).await?;
                        }
                    }
                    "bulk" => loop {
                        let from = next.fetch_add(chunk, Ordering::Relaxed);
                        if from >= count {
                            break;
                        }
                        let jobs = (from..(from + chunk).min(count))
                            .map(|_| NewJob::of(&Noop { id: Uuid::new_v4() }, None, None))
                            .collect::<Result<Vec<_>, _>>()?;
                        outbox::enqueue_many(&db, &jobs).await?;
                    },
                    other => anyhow::bail!("unknown mode `{other}` (grouped, transaction or bulk)"),
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let added = scalar(&db, &orderly_bench::NOOP_ROWS, vec![]).await? - before;
    anyhow::ensure!(
        added as u64 == args.count,
        "{added} outbox rows were added for {} jobs",
        args.count
    );
    Ok(
        json!({"mode": args.mode, "jobs": args.count, "seconds": seconds, "jobs_per_s": args.count as f64 / seconds}),
    )
}

/// Arguments of `latency`.
#[derive(Debug, clap::Args)]
pub struct LatencyArgs {
    /// Jobs per second.
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// How long.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// Enqueues noop jobs at a steady light rate; latency = completion − insert, both on the
/// database clock (a noop's run time is microseconds).
pub async fn latency(args: LatencyArgs) -> anyhow::Result<Value> {
    let db = connect(2).await?;
    let mut ids = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate.max(1)));
    for _ in 0..args.rate * args.seconds {
        tick.tick().await;
        let job = Noop { id: Uuid::new_v4() };
        outbox::enqueue(&db, &job, None, None).await?;
        wake::relays(&db);
        ids.push(job.dedup_key());
    }
    let n = ids.len() as f64;
    wait_for(
        &db,
        &orderly_bench::DONE_OF,
        vec![ids.clone().into()],
        n,
        Duration::from_secs(60),
    )
    .await?;
    let q = |p: f64| {
        let ids = ids.clone();
        let db = db.clone();
        async move {
            scalar(
                &db,
                &orderly_bench::JOB_LATENCY_MS,
                vec![ids.into(), p.into()],
            )
            .await
        }
    };
    Ok(json!({"jobs": ids.len(), "p50_ms": q(0.5).await?, "p99_ms": q(0.99).await?}))
}

/// Arguments of `expiry`.
#[derive(Debug, clap::Args)]
pub struct ExpiryArgs {
    /// Bookings to let expire.
    #[arg(long, default_value_t = 200)]
    count: usize,
    /// Hold of the first booking, in seconds; the others follow over `spread_seconds`.
    #[arg(long, default_value_t = 2)]
    hold_seconds: u64,
    /// Spread of the holds.
    #[arg(long, default_value_t = 5)]
    spread_seconds: u64,
}

/// Books seats with short holds and no payment; lateness = expiry − end of hold.
pub async fn expiry(args: ExpiryArgs) -> anyhow::Result<Value> {
    let db = connect(4).await?;
    let listing: Uuid = db
        .query_one_raw(stmt(
            &orderly_bench::LISTING_WITH_SEATS,
            vec![(args.count as i32).into()],
        ))
        .await?
        .context("no listing with enough seats (run setup first)")?
        .try_get_by_index(0)?;
    let customer: Uuid = db
        .query_one_raw(stmt(&orderly_bench::A_CUSTOMER, vec![]))
        .await?
        .context("no customer (run setup first)")?
        .try_get_by_index(0)?;
    let mut ids = Vec::new();
    let step = Duration::from_millis(args.spread_seconds * 1000 / args.count.max(1) as u64);
    for i in 0..args.count {
        let hold = Duration::from_secs(args.hold_seconds) + step * i as u32;
        let gateway = orderly_providers::payments::SimulatedGateway {
            mode: orderly_core::config::SimulatedPayments::Never,
        };
        let created = orderly_domain::bookings::create(
            &db,
            hold,
            &gateway,
            orderly_domain::bookings::NewBooking {
                customer_id: customer,
                listing_id: listing,
                quantity: 1,
                idempotency_key: None,
                request_id: None,
                max_open_holds: None,
            },
        )
        .await
        .context("booking")?;
        ids.push(created.booking.id);
    }
    // Polling during the measured window would load the database the expiry runs on; the
    // figure comes from the recorded `expired_at`, so sleep until the last hold has ended,
    // then poll slowly.
    tokio::time::sleep(Duration::from_secs(args.hold_seconds + args.spread_seconds)).await;
    wait_for_every(
        &db,
        &orderly_bench::EXPIRED_OF,
        vec![ids.clone().into()],
        ids.len() as f64,
        Duration::from_secs(60),
        Duration::from_millis(200),
    )
    .await?;
    let q = |p: f64| {
        let ids = ids.clone();
        let db = db.clone();
        async move {
            scalar(
                &db,
                &orderly_bench::EXPIRY_LAG_MS,
                vec![ids.into(), p.into()],
            )
            .await
        }
    };
    Ok(json!({"bookings": ids.len(), "p50_ms": q(0.5).await?, "p99_ms": q(0.99).await?}))
}
