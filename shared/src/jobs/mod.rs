//! The job contract between the API, the scheduler and the worker.
//!
//! Every piece of background work is a [`Job`]: a payload of IDs, the queue it runs on, a
//! deterministic task id and its retry policy. There is one way to enqueue one:
//! [`outbox::enqueue`], which writes an outbox row inside the caller's transaction, so a
//! rolled-back transaction never produces a job and a committed one never loses its jobs.
//! [`outbox::enqueue_many`] writes many in one statement; work that belongs to no
//! transaction of the caller goes through an [`Enqueuer`], which commits concurrent calls
//! together.

pub mod enqueuer;
pub mod envelope;
pub mod kinds;
pub mod outbox;
pub mod policy;
pub mod workers;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::entities::outbox::Queue;
pub use enqueuer::Enqueuer;
pub use envelope::Envelope;
pub use kinds::*;
pub use policy::RetryPolicy;

impl Queue {
    /// Every queue, in the order the worker starts them.
    pub const ALL: [Queue; 5] = [
        Queue::Bookings,
        Queue::Payments,
        Queue::Email,
        Queue::Sms,
        Queue::Reports,
    ];

    /// Parses a queue name as written in `--queues`.
    pub fn parse(name: &str) -> Option<Queue> {
        Self::ALL.into_iter().find(|q| q.as_str() == name)
    }
}

/// A kind of background work.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
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

/// How a job attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Retrying cannot help: the job goes straight to dead, keeping this error.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// May work later: retried with backoff until its attempts run out.
    #[error("transient failure: {0:#}")]
    Transient(anyhow::Error),
}

impl From<sea_orm::DbErr> for JobError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Transient(anyhow::Error::new(e).context("database"))
    }
}

impl From<crate::providers::ProviderError> for JobError {
    fn from(e: crate::providers::ProviderError) -> Self {
        match e {
            crate::providers::ProviderError::Permanent(m) => Self::Permanent(m),
            crate::providers::ProviderError::Transient(m) => Self::Transient(anyhow::anyhow!(m)),
        }
    }
}
