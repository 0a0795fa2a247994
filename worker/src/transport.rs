//! Where relayed jobs go: the Redis queues. A trait so the relay and the reconciler are
//! written once, whatever the queue's storage layout.

use async_trait::async_trait;
use orderly_shared::jobs::outbox::Pushed;
use orderly_shared::jobs::{Envelope, Queue};

/// A queue transport.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Pushes jobs to `queue`, due now. Pushing a task id that the queue still holds adds
    /// nothing.
    async fn push(&self, queue: Queue, jobs: &[Envelope]) -> anyhow::Result<()>;

    /// Of `jobs` (all on `queue`, all still `enqueued` in the outbox), those that will not
    /// run: the queue does not hold the task, or holds it as finished (so its end could
    /// not be recorded).
    async fn lost(&self, queue: Queue, jobs: &[Pushed]) -> anyhow::Result<Vec<Pushed>>;

    /// Drops the data of some tasks that finished before `cutoff` (Unix seconds), from a
    /// sample of each finished set; returns how many went. Call again while it removes many.
    async fn purge_finished(&self, queue: Queue, cutoff: i64) -> anyhow::Result<u64>;
}
