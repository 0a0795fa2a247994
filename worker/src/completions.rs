//! Recording job ends in batches: many handlers finishing at once share one `UPDATE`.
//!
//! A handler waits until its end is written (so "done in Redis" still implies "done in the
//! outbox"); while one batch is being written the next fills up, so batches grow with load
//! and add no delay when idle.

use std::sync::Arc;

use anyhow::Context as _;
use orderly_jobs::outbox;
use sea_orm::{DatabaseConnection, DbErr};
use uuid::Uuid;

use orderly_core::batcher::Batcher;

/// The most completions written by one statement.
const MAX_BATCH: usize = 1000;

/// A handle to the completion writer.
#[derive(Debug, Clone)]
pub struct Completions {
    batcher: Batcher<(Uuid, u32), Result<(), Arc<DbErr>>>,
}

impl Completions {
    /// Starts the writer task.
    pub fn start(db: DatabaseConnection) -> Self {
        let batcher = Batcher::start(MAX_BATCH, 2, move |done: Vec<(Uuid, u32)>| {
            let db = db.clone();
            async move {
                metrics::histogram!("job_completion_batch_size").record(done.len() as f64);
                let result = outbox::complete_many(&db, &done).await.map_err(Arc::new);
                vec![result; done.len()]
            }
        });
        Self { batcher }
    }

    /// Records that attempt `attempt` of outbox row `id` succeeded, returning once written.
    pub async fn record(&self, id: Uuid, attempt: u32) -> anyhow::Result<()> {
        self.batcher
            .submit((id, attempt))
            .await
            .ok_or_else(|| anyhow::anyhow!("the completion writer stopped"))?
            .context("recording a completion")
    }
}
