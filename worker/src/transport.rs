//! Where relayed jobs go: the Redis queues. A trait so the relay and the reconciler are
//! written once, whatever the queue's storage layout.

use async_trait::async_trait;
use orderly_shared::jobs::{Envelope, Queue};
use uuid::Uuid;

/// A queue transport.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Pushes jobs to `queue`, due now. Pushing a task id that the queue still holds adds
    /// nothing.
    async fn push(&self, queue: Queue, jobs: &[Envelope]) -> anyhow::Result<()>;

    /// Of `jobs` (outbox id, task id; all on `queue`, all still `enqueued` in the outbox),
    /// the outbox ids of those that will not run: the queue does not hold the task, or
    /// holds it as finished (so its end could not be recorded).
    async fn lost(&self, queue: Queue, jobs: &[(Uuid, String)]) -> anyhow::Result<Vec<Uuid>>;

    /// Drops the data of tasks that finished before `cutoff` (Unix seconds).
    async fn purge_finished(&self, queue: Queue, cutoff: i64) -> anyhow::Result<u64>;
}
