//! Group commit for jobs that belong to no transaction of the caller (a scheduler's fan-out,
//! a probe, a script): each call enqueues one job and returns once it is committed, and
//! calls made at the same time share one `INSERT` and one commit.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbErr};

use super::Job;
use super::outbox::{self, NewJob};
use super::wake;
use orderly_core::batcher::Batcher;

/// The most jobs written by one statement.
const MAX_BATCH: usize = 1000;

/// A handle to the group-commit writer; clone it freely.
#[derive(Debug, Clone)]
pub struct Enqueuer {
    batcher: Batcher<NewJob, Result<(), Arc<DbErr>>>,
}

/// Why a job was not enqueued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The job could not be made an outbox row (its payload does not serialise).
    #[error("preparing the job")]
    Job(#[source] DbErr),
    /// The batch's `INSERT` or commit failed (shared by every job of the batch).
    #[error("enqueuing")]
    Write(#[source] Arc<DbErr>),
    /// The writer task is gone (the runtime is shutting down).
    #[error("the enqueuer stopped")]
    Stopped,
}

impl Enqueuer {
    /// Starts the writer task (at most two statements in flight).
    pub fn start(db: DatabaseConnection) -> Self {
        let batcher = Batcher::start(MAX_BATCH, 2, move |jobs: Vec<NewJob>| {
            let db = db.clone();
            async move {
                let result = outbox::enqueue_many(&db, &jobs)
                    .await
                    .map(|_| wake::relays(&db))
                    .map_err(Arc::new);
                vec![result; jobs.len()]
            }
        });
        Self { batcher }
    }

    /// Enqueues `job` (now, or at `run_at`) in a transaction of its own, shared with
    /// concurrent calls; returns once it is committed. A job whose dedup key is already in
    /// the outbox is not added again.
    pub async fn enqueue<J: Job>(
        &self,
        job: &J,
        run_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), EnqueueError> {
        let job = NewJob::of(job, run_at, None).map_err(EnqueueError::Job)?;
        self.batcher
            .submit(job)
            .await
            .ok_or(EnqueueError::Stopped)?
            .map_err(EnqueueError::Write)
    }
}
