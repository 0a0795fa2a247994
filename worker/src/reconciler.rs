//! The reconciler: makes sure every job recorded in PostgreSQL reaches an end.
//!
//! Every `interval` it (1) hands back outbox rows whose lease ran out with no recorded end,
//! and (2) hands back at once rows that were pushed more than `grace` ago but that Redis no
//! longer holds (Redis restarted empty, or the relay died between claim and push). The relay
//! then pushes them again. Jobs held by a worker that died stay in Redis and come back
//! through the queue's own orphan recovery. It also deletes expired idempotency keys.

use std::sync::Arc;
use std::time::Duration;

use orderly_shared::jobs::envelope::task_id;
use orderly_shared::jobs::{Queue, outbox};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::transport::Transport;

/// Reconciler tuning.
#[derive(Debug, Clone, Copy)]
pub struct ReconcilerSettings {
    /// How often it runs.
    pub interval: Duration,
    /// How long after a push a job may be absent from Redis before it counts as lost
    /// (covers a push still in flight).
    pub grace: Duration,
}

impl ReconcilerSettings {
    /// Runs every `interval`, with a grace of the same length.
    pub fn every(interval: Duration) -> Self {
        Self {
            interval,
            grace: interval,
        }
    }
}

/// Runs until `stop` is cancelled.
pub async fn run(
    db: DatabaseConnection,
    transport: Arc<dyn Transport>,
    settings: ReconcilerSettings,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = reconcile_once(&db, transport.as_ref(), &settings).await {
            tracing::warn!(error = %format!("{e:#}"), "reconciliation failed; retrying next round");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(settings.interval) => {}
        }
    }
}

/// One round; returns how many jobs were handed back.
pub async fn reconcile_once(
    db: &DatabaseConnection,
    transport: &dyn Transport,
    settings: &ReconcilerSettings,
) -> anyhow::Result<u64> {
    let mut handed_back = outbox::reclaim_expired(db).await?;
    for queue in Queue::ALL {
        let enqueued = enqueued_before(db, queue, settings.grace).await?;
        for chunk in enqueued.chunks(1000) {
            let lost = transport.missing(queue, chunk).await?;
            if !lost.is_empty() {
                handed_back += outbox::reclaim(db, &lost).await?;
            }
        }
    }
    if handed_back > 0 {
        tracing::warn!(
            jobs = handed_back,
            "handed back jobs that never reported an end"
        );
        metrics::counter!("outbox_reclaimed_total").increment(handed_back);
    }
    db.execute_unprepared("DELETE FROM idempotency_keys WHERE expires_at < now()")
        .await?;
    Ok(handed_back)
}

/// `(outbox id, task id)` of the rows of `queue` pushed more than `grace` ago.
async fn enqueued_before(
    db: &DatabaseConnection,
    queue: Queue,
    grace: Duration,
) -> anyhow::Result<Vec<(Uuid, String)>> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT id, attempts FROM outbox
              WHERE status = 'enqueued' AND queue = $1 AND enqueued_at < now() - make_interval(secs => $2)",
            vec![queue.as_str().into(), grace.as_secs_f64().into()],
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            let id: Uuid = row.try_get("", "id")?;
            let attempts: i32 = row.try_get("", "attempts")?;
            Ok((id, task_id(id, attempts.max(0) as u32 + 1)))
        })
        .collect()
}
