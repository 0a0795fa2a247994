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

    /// Of `jobs` (all on `queue`), the outbox ids of those the queue no longer holds:
    /// neither waiting, running, nor finished.
    async fn missing(&self, queue: Queue, jobs: &[(Uuid, String)]) -> anyhow::Result<Vec<Uuid>>;
}
