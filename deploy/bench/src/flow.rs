//! `flow`: the whole booking flow with a worker draining on the same machine. Books for a
//! fixed time, waits until every job the bookings caused has ended, and divides the work
//! PostgreSQL and Redis did meanwhile by the bookings whose every job finished.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use orderly_core::redis_conn::RedisConn;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};

use crate::cpu;
use crate::http::{self, LoadArgs};
use orderly_db::sql::stmt;

use crate::pipeline::{connect, scalar};

/// How long PostgreSQL may keep an idle backend's statistics before publishing them
/// (`PGSTAT_IDLE_INTERVAL`, 10 s): counters are read only after this much quiet.
const STATS_SETTLE: Duration = Duration::from_secs(11);

/// Work counters of PostgreSQL (this database) and Redis at one instant.
#[derive(Debug, Clone, Copy)]
struct Counters {
    commits: f64,
    statements: Option<f64>,
    wal_bytes: f64,
    redis_commands: f64,
}

async fn counters(db: &DatabaseConnection, redis: &mut RedisConn) -> anyhow::Result<Counters> {
    let commits = scalar(db, &orderly_bench::COMMITS, vec![]).await?;
    // pg_stat_statements counts each statement a client sent (BEGIN and COMMIT included)
    // as it ends; absent when the server was not started with it.
    let statements = scalar(db, &orderly_bench::STATEMENTS_RUN, vec![])
        .await
        .ok();
    let wal_bytes = scalar(db, &orderly_bench::WAL_BYTES, vec![]).await?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await?;
    let redis_commands = info
        .lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|v| v.split(',').next()?.parse::<f64>().ok())
        .sum();
    Ok(Counters {
        commits,
        statements,
        wal_bytes,
        redis_commands,
    })
}

/// Arguments of `flow`.
#[derive(Debug, clap::Args)]
pub struct FlowArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Where to write the statements PostgreSQL ran most often during the phase, per
    /// completed booking (needs pg_stat_statements).
    #[arg(long)]
    statements_out: Option<PathBuf>,
}

/// A statement's totals so far: calls, execution ms, plans made and planning ms (the last
/// two are 0 unless `pg_stat_statements.track_planning` is on).
#[derive(Debug, Clone, Copy, Default)]
struct StatementTotals {
    calls: f64,
    exec_ms: f64,
    plans: f64,
    plan_ms: f64,
}

impl std::ops::Sub for StatementTotals {
    type Output = Self;
    fn sub(self, b: Self) -> Self {
        Self {
            calls: self.calls - b.calls,
            exec_ms: self.exec_ms - b.exec_ms,
            plans: self.plans - b.plans,
            plan_ms: self.plan_ms - b.plan_ms,
        }
    }
}

/// The totals of each statement (by its text) in this database so far.
async fn statement_calls(db: &DatabaseConnection) -> HashMap<String, StatementTotals> {
    let rows = db
        .query_all_raw(stmt(&orderly_bench::STATEMENT_TOTALS, []))
        .await
        .unwrap_or_default();
    rows.into_iter()
        .filter_map(|r| {
            let totals = StatementTotals {
                calls: r.try_get("", "calls").ok()?,
                exec_ms: r.try_get("", "ms").ok()?,
                plans: r.try_get("", "plans").ok()?,
                plan_ms: r.try_get("", "plan_ms").ok()?,
            };
            Some((r.try_get("", "query").ok()?, totals))
        })
        .collect()
}

/// Runs the measurement.
pub async fn flow(args: FlowArgs) -> anyhow::Result<Value> {
    let FlowArgs {
        load: args,
        statements_out,
    } = args;
    let db = connect(2).await?;
    let redis_url = std::env::var("REDIS_URL").context("REDIS_URL is not set")?;
    let mut redis = RedisConn::open(&redis_url).await?;
    tokio::time::sleep(STATS_SETTLE).await;
    let since = scalar(&db, &orderly_bench::NOW_EPOCH, vec![]).await?;
    let before = counters(&db, &mut redis).await?;
    let calls_before = statement_calls(&db).await;
    let cpu_before = cpu::snapshot();

    let load = http::bookings(args).await?;
    let load_ended = Instant::now();
    let backlog = scalar(&db, &orderly_bench::UNFINISHED, vec![]).await?;
    while scalar(&db, &orderly_bench::ANY_UNFINISHED, vec![]).await? > 0.0 {
        anyhow::ensure!(
            load_ended.elapsed() < Duration::from_secs(1800),
            "the jobs of the load did not end within 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_s = load_ended.elapsed().as_secs_f64();
    let cpu_after = cpu::snapshot();

    tokio::time::sleep(STATS_SETTLE).await;
    let after = counters(&db, &mut redis).await?;
    let calls_after = statement_calls(&db).await;
    let window = vec![since.into()];
    let booked = scalar(&db, &orderly_bench::BOOKED_SINCE, window.clone()).await?;
    // Completed: paid, and every message about it sent.
    let completed = scalar(&db, &orderly_bench::COMPLETED_SINCE, window).await?;
    if let Some(path) = statements_out {
        let mut deltas: Vec<(StatementTotals, &String)> = calls_after
            .iter()
            .map(|(q, after)| (*after - calls_before.get(q).copied().unwrap_or_default(), q))
            .filter(|(d, _)| d.calls > 0.0)
            .collect();
        deltas.sort_by(|a, b| b.0.calls.total_cmp(&a.0.calls));
        let per_booking = completed.max(1.0);
        let text: String =
            std::iter::once("calls  exec µs  plans  plan µs  (per completed booking)\n".to_owned())
                .chain(deltas.iter().take(30).map(|(d, q)| {
                    format!(
                        "{:5.2}  {:7.1}  {:5.2}  {:7.1}  {q}\n",
                        d.calls / per_booking,
                        1000.0 * d.exec_ms / per_booking,
                        d.plans / per_booking,
                        1000.0 * d.plan_ms / per_booking
                    )
                }))
                .collect();
        std::fs::write(&path, text).context("writing the statements")?;
    }
    let load_s = load["seconds"].as_f64().unwrap_or(f64::NAN);
    let per = |d: f64| d / completed.max(1.0);
    Ok(json!({
        "rps": load["rps"], "p50_ms": load["p50_ms"], "p99_ms": load["p99_ms"],
        "errors": load["errors"], "first_error": load["first_error"], "seconds": load_s,
        "backlog_jobs": backlog, "drain_s": drain_s,
        "booked": booked, "completed": completed,
        "completed_per_s": completed / (load_s + drain_s),
        "commits_per_booking": per(after.commits - before.commits),
        "statements_per_booking": match (before.statements, after.statements) {
            (Some(b), Some(a)) => json!(per(a - b)),
            _ => Value::Null,
        },
        "wal_kb_per_booking": per(after.wal_bytes - before.wal_bytes) / 1024.0,
        "redis_commands_per_booking": per(after.redis_commands - before.redis_commands),
        "cpu_ms_per_booking": cpu::per_unit(&cpu_before, &cpu_after, completed),
    }))
}

/// PostgreSQL's durability settings, as the figures were measured.
pub async fn durability() -> anyhow::Result<Value> {
    let db = connect(1).await?;
    let mut out = serde_json::Map::new();
    for name in ["fsync", "synchronous_commit", "full_page_writes"] {
        let row = db
            .query_one_raw(stmt(&orderly_bench::SETTING, [name.into()]))
            .await?
            .context("no setting")?;
        out.insert(name.to_owned(), json!(row.try_get_by_index::<String>(0)?));
    }
    Ok(Value::Object(out))
}
