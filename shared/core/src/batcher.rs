//! Batching across concurrent handlers: each handler submits one item and waits for its
//! own result; a background task gathers whatever has queued up and handles it in one go.
//!
//! Batches grow with load and add no delay when idle: the first item starts a batch at
//! once, and items arriving while batches are in flight form the next one. Up to
//! `parallel` batches run at the same time.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// A handle to a running batcher of `T`s with results `R`.
#[derive(Debug)]
pub struct Batcher<T, R> {
    tx: mpsc::Sender<(T, oneshot::Sender<R>)>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the gathering task. `run` gets a batch (at most `max` items) and returns one
    /// result per item, in order.
    pub fn start<F, Fut>(max: usize, parallel: usize, run: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let max = max.max(1);
        let (tx, mut rx) = mpsc::channel::<(T, oneshot::Sender<R>)>(max * 4);
        let slots = Arc::new(Semaphore::new(parallel.max(1)));
        let run = Arc::new(run);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Wait for a free slot first, so that the batch gathers what arrives meanwhile.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                let run = run.clone();
                tokio::spawn(async move {
                    let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
                    let size = items.len();
                    let results = run(items).await;
                    debug_assert_eq!(results.len(), size);
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                    drop(slot);
                });
            }
        });
        Self { tx }
    }

    /// Submits `item` and waits for its result; `None` if the batcher stopped or dropped
    /// the item.
    pub async fn submit(&self, item: T) -> Option<R> {
        let (reply, result) = oneshot::channel();
        self.tx.send((item, reply)).await.ok()?;
        result.await.ok()
    }
}
