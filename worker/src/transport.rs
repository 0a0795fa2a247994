//! Where relayed jobs go: the Redis queues. A trait so the relay and the reconciler are
//! written once, whatever the queue's storage layout.

use async_trait::async_trait;
use orderly_jobs::outbox::Pushed;
use orderly_jobs::{Envelope, Queue};

/// A queue transport.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Pushes jobs to `queue`, due now. Pushing a task id that the queue still holds adds
    /// nothing.
    async fn push(&self, queue: Queue, jobs: &[Envelope]) -> anyhow::Result<()>;

    /// How many tasks wait in each of `queues` (pushed, not yet fetched by a worker), in
    /// order.
    async fn waiting(&self, queues: &[Queue]) -> anyhow::Result<Vec<u64>>;

    /// Of `jobs` (all on `queue`, all still `enqueued` in the outbox), those the queue no
    /// longer holds, neither waiting nor fetched by a worker: they will never run.
    async fn lost(&self, queue: Queue, jobs: &[Pushed]) -> anyhow::Result<Vec<Pushed>>;

    /// Raises the paused flag of each queue of `paused` and lowers every other queue's, so
    /// that workers fetch nothing from a paused queue (PostgreSQL's `queue_pauses` is the
    /// record; this writes it where the workers look).
    async fn set_paused(&self, paused: &[Queue]) -> anyhow::Result<()>;
}
