//! The job contract between the API, the scheduler and the worker.
//!
//! Every piece of background work is a [`Job`]: a payload of IDs, the queue it runs on, a
//! deterministic task id and its retry policy. There is one way to enqueue one:
//! [`outbox::enqueue`], which writes an outbox row inside the caller's transaction, so a
//! rolled-back transaction never produces a job and a committed one never loses its jobs;
//! that transaction commits with [`wake::commit`], which then wakes the relays.
//! [`outbox::enqueue_many`] writes many in one statement; work that belongs to no
//! transaction of the caller goes through an [`Enqueuer`], which commits concurrent calls
//! together.

pub mod enqueuer;
pub mod envelope;
pub mod kinds;
pub mod outbox;
pub mod pauses;
pub mod policy;
pub mod schedules;
pub mod wake;
pub mod workers;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use enqueuer::{EnqueueError, Enqueuer};
pub use envelope::Envelope;
pub use kinds::*;
pub use orderly_db::outbox::Queue;
pub use policy::{PolicyOverrides, RetryPolicy};

/// A kind of background work, declared by its `impl Job` and listed in [`for_each_job!`]
/// (which makes it [`Listed`]: its [`JobKind`] is `Self::KIND`).
pub trait Job: Listed + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable name stored with the job (`expire_booking`).
    const NAME: &'static str;
    /// The queue it runs on.
    const QUEUE: Queue;
    /// How often and how patiently it is retried.
    const POLICY: RetryPolicy = RetryPolicy::DEFAULT;
    /// The longest one attempt may run.
    const TIMEOUT: Duration = Duration::from_secs(30);

    /// A key unique to this piece of work, derived from its IDs, so that enqueueing the
    /// same work twice yields one job (`expire_booking:<booking id>`).
    fn dedup_key(&self) -> String;
}
