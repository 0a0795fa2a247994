//! The reconciler: makes sure every job recorded in PostgreSQL reaches an end.
//!
//! Every `interval` it (1) hands back outbox rows whose lease ran out with no recorded end;
//! (2) hands back at once rows pushed more than `grace` ago whose task Redis no longer
//! holds (Redis restarted empty, the relay died between claim and push) or holds as
//! finished although the outbox recorded no end (the end could not be written); the relay
//! then pushes them again, as new tasks; (3) expires unpaid bookings whose hold ended more
//! than a minute ago (a sweep behind the `expire_booking` jobs); (4) drops finished tasks'
//! data from Redis after [`REDIS_RETENTION`] (PostgreSQL keeps the record) and expired
//! idempotency keys. Jobs held by a worker that died stay in Redis and come back through
//! the queue's own orphan recovery.

use std::sync::Arc;
use std::time::Duration;

use orderly_shared::jobs::{Queue, outbox};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::queues::PURGE_SAMPLE;
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
        let pushed = outbox::pushed_before(db, queue, settings.grace).await?;
        for chunk in pushed.chunks(1000) {
            let lost = transport.lost(queue, chunk).await?;
            if !lost.is_empty() {
                handed_back += outbox::reclaim(db, &lost).await?;
            }
        }
        purge_finished(transport, queue).await?;
    }
    sweep_expired_holds(db).await?;
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

/// How long Redis keeps a finished task's data.
pub const REDIS_RETENTION: Duration = Duration::from_secs(600);

/// Expires unpaid bookings whose hold ended over a minute ago, in case their job was lost.
async fn sweep_expired_holds(db: &DatabaseConnection) -> anyhow::Result<()> {
    let rows = db
        .query_all_raw(Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT id FROM bookings
              WHERE status = 'pending_payment' AND hold_expires_at < now() - interval '1 minute'
              LIMIT 500",
        ))
        .await?;
    for row in rows {
        let id: Uuid = row.try_get("", "id")?;
        if orderly_shared::domain::bookings::expire(db, id, None).await? {
            tracing::warn!(booking.id = %id, "expired by the sweep: its expire_booking job was late or lost");
        }
    }
    Ok(())
}

/// Most time one round spends purging one queue's finished tasks.
const PURGE_BUDGET: Duration = Duration::from_millis(500);

/// Drops finished tasks older than [`REDIS_RETENTION`]: purge calls sample the finished
/// sets, so they repeat while a call still finds many old ones (a busy queue finishes far
/// more than one sample per round), within [`PURGE_BUDGET`].
async fn purge_finished(transport: &dyn Transport, queue: Queue) -> anyhow::Result<()> {
    let cutoff =
        chrono::Utc::now() - chrono::Duration::from_std(REDIS_RETENTION).unwrap_or_default();
    let started = std::time::Instant::now();
    loop {
        let removed = transport.purge_finished(queue, cutoff.timestamp()).await?;
        if removed < PURGE_SAMPLE / 10 || started.elapsed() >= PURGE_BUDGET {
            return Ok(());
        }
    }
}
