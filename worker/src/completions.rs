//! Recording job ends in batches: many handlers finishing at once share one `UPDATE`.
//!
//! A handler waits until its end is written (so "done in Redis" still implies "done in the
//! outbox"); while one batch is being written the next fills up, so batches grow with load
//! and add no delay when idle.

use orderly_shared::jobs::outbox;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

type Reply = oneshot::Sender<Result<(), String>>;

/// The most completions written by one statement.
const MAX_BATCH: usize = 1000;

/// A handle to the completion writer.
#[derive(Debug, Clone)]
pub struct Completions {
    tx: mpsc::Sender<(Uuid, u32, Reply)>,
}

impl Completions {
    /// Starts the writer task.
    pub fn start(db: DatabaseConnection) -> Self {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(write_batches(db, rx));
        Self { tx }
    }

    /// Records that attempt `attempt` of outbox row `id` succeeded, returning once written.
    pub async fn record(&self, id: Uuid, attempt: u32) -> anyhow::Result<()> {
        let (reply, written) = oneshot::channel();
        self.tx
            .send((id, attempt, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the completion writer stopped"))?;
        written
            .await
            .map_err(|_| anyhow::anyhow!("the completion writer stopped"))?
            .map_err(|e| anyhow::anyhow!("recording a completion: {e}"))
    }
}

async fn write_batches(db: DatabaseConnection, mut rx: mpsc::Receiver<(Uuid, u32, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let done: Vec<(Uuid, u32)> = batch
            .iter()
            .map(|(id, attempt, _)| (*id, *attempt))
            .collect();
        let result = outbox::complete_many(&db, &done)
            .await
            .map_err(|e| e.to_string());
        metrics::histogram!("job_completion_batch_size").record(batch.len() as f64);
        for (_, _, reply) in batch {
            let _ = reply.send(result.clone());
        }
    }
}
