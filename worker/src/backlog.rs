//! Each queue's backlog, read from PostgreSQL (the record) every few seconds into gauges that
//! dashboards and autoscalers read: jobs due and waiting for a worker, the oldest one's wait,
//! the runs in progress, and how far the outbox is behind. Every process that runs the relay
//! publishes them (the same values): aggregate with `max by (queue)`, not `sum`.
//!
//! One statement per round, each part on an index: due `pending` rows on
//! `(queue, run_at, id) WHERE status = 'pending'` (counted up to [`COUNT_CAP`]), `enqueued`
//! rows (at most a window per queue) on `(queue, enqueued_at) WHERE status = 'enqueued'`,
//! `running` rows on `(queue, status)`.

use std::time::Duration;

use orderly_db::outbox::OutboxStatus;
use orderly_db::sql::stmt;
use orderly_db::{quoted, sql};
use orderly_jobs::Queue;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;

/// How often the gauges are refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// The most due `pending` rows counted per queue: the count stays cheap in a huge backlog.
pub const COUNT_CAP: i64 = 100_000;

/// One queue's backlog.
#[derive(Debug, Clone, PartialEq)]
pub struct Backlog {
    /// The queue.
    pub queue: Queue,
    /// Due rows the relay has not pushed yet (window full or relay behind), up to [`COUNT_CAP`].
    pub outbox_due: i64,
    /// Seconds since the oldest of those fell due (0: none).
    pub outbox_lag_s: f64,
    /// Rows pushed to Redis and not yet taken by a worker.
    pub enqueued: i64,
    /// Seconds since the oldest due job not yet started fell due (0: none).
    pub oldest_s: f64,
    /// Runs in progress.
    pub running: i64,
}

impl Backlog {
    /// Jobs due and not started: the queue's depth.
    pub fn depth(&self) -> i64 {
        self.outbox_due + self.enqueued
    }
}

/// Reads every queue's backlog in one statement.
pub async fn read(db: &impl ConnectionTrait) -> Result<Vec<Backlog>, DbErr> {
    let queues: Vec<String> = Queue::ALL.iter().map(|q| q.as_str().to_owned()).collect();
    let rows = db
        .query_all_raw(stmt(&READ, [queues.into(), COUNT_CAP.into()]))
        .await?;
    let mut backlog = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("", "queue")?;
        let Some(queue) = Queue::parse(&name) else {
            continue;
        };
        backlog.push(Backlog {
            queue,
            outbox_due: row.try_get("", "due")?,
            outbox_lag_s: row.try_get::<f64>("", "lag_s")?.max(0.0),
            enqueued: row.try_get("", "enqueued")?,
            oldest_s: row.try_get::<f64>("", "oldest_s")?.max(0.0),
            running: row.try_get("", "running")?,
        });
    }
    Ok(backlog)
}

/// Sets the gauges of `backlog`.
pub fn publish(backlog: &[Backlog]) {
    for b in backlog {
        let queue = b.queue.as_str();
        metrics::gauge!("job_queue_depth", "queue" => queue).set(b.depth() as f64);
        metrics::gauge!("job_queue_oldest_age_seconds", "queue" => queue).set(b.oldest_s);
        metrics::gauge!("jobs_running", "queue" => queue).set(b.running as f64);
        metrics::gauge!("outbox_due", "queue" => queue).set(b.outbox_due as f64);
        metrics::gauge!("outbox_lag_seconds", "queue" => queue).set(b.outbox_lag_s);
    }
}

/// Refreshes the gauges every [`REFRESH_EVERY`] until `stop`.
pub async fn run(db: DatabaseConnection, stop: CancellationToken) {
    loop {
        match read(&db).await {
            Ok(backlog) => publish(&backlog),
            Err(e) => tracing::warn!(error = %e, "reading the queues' backlog failed; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(REFRESH_EVERY) => {}
        }
    }
}

const PENDING: &str = quoted!(OutboxStatus::Pending);
const ENQUEUED: &str = quoted!(OutboxStatus::Enqueued);
const RUNNING: &str = quoted!(OutboxStatus::Running);

sql! {
    /// Every queue of `$1`'s backlog, counting at most `$2` due rows.
    READ = "
        SELECT q.queue, d.due, d.lag_s, e.enqueued,
               COALESCE(EXTRACT(EPOCH FROM now() - LEAST(d.oldest, e.oldest))::float8, 0) AS oldest_s,
               (SELECT count(*) FROM outbox o WHERE o.queue = q.queue AND o.status = ", RUNNING, ") AS running
          FROM unnest($1::text[]) AS q(queue)
         CROSS JOIN LATERAL (
               SELECT count(*) AS due, min(p.run_at) AS oldest,
                      COALESCE(EXTRACT(EPOCH FROM now() - min(p.run_at))::float8, 0) AS lag_s
                 FROM (SELECT o.run_at FROM outbox o
                        WHERE o.queue = q.queue AND o.status = ", PENDING, " AND o.run_at <= now()
                        ORDER BY o.run_at LIMIT $2) p) d
         CROSS JOIN LATERAL (
               SELECT count(*) AS enqueued, min(o.run_at) AS oldest
                 FROM outbox o WHERE o.queue = q.queue AND o.status = ", ENQUEUED, ") e";
}
