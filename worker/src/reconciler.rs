//! The reconciler: makes sure every job recorded in PostgreSQL reaches an end. One runs at
//! a time across all worker processes (the `reconciler` lease); each round is bounded.
//!
//! Every `interval` the lease holder (1) hands on runs whose worker stopped renewing their
//! lease: the lost run counts as an attempt, and after the job type's limit the job is dead
//! with "worker lost N times"; (2) hands back at once rows pushed more than `grace` ago
//! that Redis no longer holds (Redis restarted empty, the relay died between claim and
//! push): the relay pushes them again as new tasks; a row Redis still holds is never pushed
//! again merely because it is old; (3) forgets worker processes silent for an hour; (4)
//! writes each queue's paused flag in Redis from `queue_pauses`. Tasks
//! fetched by a worker that died go back to their queue through the storage's own heartbeat
//! (Redis's clock). Periodic work on the domain's tables (the sweep of expired holds,
//! pruning idempotency keys) is the scheduler's.

use std::sync::Arc;
use std::time::Duration;

use orderly_jobs::{PolicyOverrides, Queue, outbox, pauses, workers};
use sea_orm::{DatabaseConnection, TransactionTrait};
use tokio_util::sync::CancellationToken;

use crate::jobs;
use crate::transport::Transport;

/// Reconciler tuning.
#[derive(Debug, Clone)]
pub struct ReconcilerSettings {
    /// How often it runs.
    pub interval: Duration,
    /// How long after a push a job may be absent from Redis before it counts as lost
    /// (covers a push still in flight).
    pub grace: Duration,
    /// This process, as the lease holder.
    pub holder: String,
    /// Retry-policy overrides, for runs whose worker was lost.
    pub policies: PolicyOverrides,
}

/// Most rows one round looks at per step.
const ROUND_LIMIT: u64 = 1000;
/// The lease's name.
const LEASE: &str = "reconciler";

/// Runs until `stop` is cancelled, reconciling while it holds the lease.
pub async fn run(
    db: DatabaseConnection,
    transport: Arc<dyn Transport>,
    settings: ReconcilerSettings,
    stop: CancellationToken,
) {
    let ttl = settings.interval * 3;
    loop {
        match orderly_core::leases::acquire(&db, LEASE, &settings.holder, ttl).await {
            Ok(Some(_)) => {
                if let Err(e) = reconcile_once(&db, transport.as_ref(), &settings).await {
                    tracing::warn!(error = %format!("{e:#}"), "reconciliation failed; retrying next round");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot take the reconciler lease"),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(settings.interval) => {}
        }
    }
    let _ = orderly_core::leases::release(&db, LEASE, &settings.holder).await;
}

/// One round; returns how many jobs were handed back or on.
pub async fn reconcile_once(
    db: &DatabaseConnection,
    transport: &dyn Transport,
    settings: &ReconcilerSettings,
) -> anyhow::Result<u64> {
    let mut handed_back = hand_on_lapsed(db, &settings.policies).await?;
    for queue in Queue::ALL {
        let pushed = outbox::pushed_before(db, queue, settings.grace, ROUND_LIMIT).await?;
        let lost = transport.lost(queue, &pushed).await?;
        if !lost.is_empty() {
            handed_back += outbox::reclaim(db, &lost).await?;
        }
    }
    if handed_back > 0 {
        tracing::warn!(
            jobs = handed_back,
            "handed back jobs that Redis lost or whose worker was lost"
        );
        metrics::counter!("outbox_reclaimed_total").increment(handed_back);
    }
    workers::prune(db, Duration::from_secs(3600)).await?;
    // The paused flags, from the record: heals a flag lost with Redis or left unwritten.
    let paused: Vec<Queue> = pauses::paused(db)
        .await?
        .into_iter()
        .map(|p| p.queue)
        .collect();
    transport.set_paused(&paused).await?;
    Ok(handed_back)
}

/// Runs whose worker stopped renewing their lease: each counts as an attempt; retried with
/// the job type's backoff, or dead past its limit (with what that death means applied).
async fn hand_on_lapsed(
    db: &DatabaseConnection,
    policies: &PolicyOverrides,
) -> anyhow::Result<u64> {
    let txn = db.begin().await?;
    let lapsed = outbox::lapsed(&txn, ROUND_LIMIT).await?;
    let mut decided = Vec::with_capacity(lapsed.len());
    for run in &lapsed {
        let envelope = &run.envelope;
        let policy = policies.policy_of(&envelope.job_type);
        let losses = run.worker_losses + 1;
        let worker = run.worker.as_deref().unwrap_or("unknown");
        if policy.may_retry(envelope.attempt) {
            decided.push(outbox::HandOn {
                id: envelope.outbox_id,
                retry_in: Some(policy.delay_after(envelope.attempt)),
                error: format!(
                    "worker {worker} lost during attempt {} (worker lost {losses} times)",
                    envelope.attempt
                ),
            });
        } else {
            let error = format!(
                "worker lost {losses} times; gave up after {} attempts (last worker {worker})",
                envelope.attempt
            );
            jobs::on_dead(&txn, envelope, &error).await?;
            tracing::error!(job.id = %envelope.outbox_id, job.type = %envelope.job_type, error = %error, "job dead");
            decided.push(outbox::HandOn {
                id: envelope.outbox_id,
                retry_in: None,
                error,
            });
        }
    }
    let n = outbox::hand_on_lapsed(&txn, &decided).await?;
    txn.commit().await?;
    Ok(n)
}
