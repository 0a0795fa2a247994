//! The runs this worker process holds: each starts with PostgreSQL's fence
//! ([`outbox::start_many`], batched across concurrent handlers), is renewed by the
//! process's heartbeat while it runs, and is let go when its end is recorded. The
//! heartbeat also registers the process in `workers`, which sizes each queue's window.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use orderly_core::batcher::Batcher;
use orderly_jobs::{outbox, workers};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Most starts written by one statement.
const MAX_BATCH: usize = 500;

/// The process's runs.
#[derive(Debug, Clone)]
pub struct Runs {
    worker: Arc<workers::WorkerProcess>,
    lease: Duration,
    held: Arc<Mutex<HashSet<Uuid>>>,
    starts: Batcher<(Uuid, i64), Result<Option<u32>, Arc<DbErr>>>,
    started: Arc<Notify>,
}

/// What the fence said of a fetched task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// This is the row's run `attempt`: do it.
    Run(u32),
    /// A stale copy (already run, handed on, or taken by another worker): skip it.
    Stale,
}

impl Runs {
    /// Starts the writer of starts for `worker`, with runs leased for `lease`.
    pub fn new(db: DatabaseConnection, worker: workers::WorkerProcess, lease: Duration) -> Self {
        let name = worker.name.clone();
        let started = Arc::new(Notify::new());
        let notify = started.clone();
        let starts = Batcher::start(MAX_BATCH, 2, move |runs: Vec<(Uuid, i64)>| {
            let (db, name, notify) = (db.clone(), name.clone(), notify.clone());
            async move {
                let result = outbox::start_many(&db, &runs, &name, lease).await;
                // Rows left the window: the relay may refill it.
                notify.notify_one();
                match result {
                    Ok(started) => runs
                        .iter()
                        .map(|(id, _)| Ok(started.get(id).copied()))
                        .collect(),
                    Err(e) => vec![Err(Arc::new(e)); runs.len()],
                }
            }
        });
        Self {
            worker: Arc::new(worker),
            lease,
            held: Arc::default(),
            starts,
            started,
        }
    }

    /// The worker process's name (`outbox.locked_by`).
    pub fn worker_name(&self) -> &str {
        &self.worker.name
    }

    /// Woken whenever runs start (so rows left their queue's window).
    pub fn started(&self) -> Arc<Notify> {
        self.started.clone()
    }

    /// Asks the fence whether the task of `(id, claim)` is this run's to do; holds the run
    /// (its lease renewed by the heartbeat) when it is.
    pub async fn start(&self, id: Uuid, claim: i64) -> anyhow::Result<Start> {
        let started = self
            .starts
            .submit((id, claim))
            .await
            .ok_or_else(|| anyhow::anyhow!("the start writer stopped"))?
            .context("starting the run")?;
        Ok(match started {
            Some(attempt) => {
                self.lock().insert(id);
                Start::Run(attempt)
            }
            None => Start::Stale,
        })
    }

    /// Lets run `id` go (its end is recorded, or it is abandoned).
    pub fn finish(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One heartbeat: the process is alive, and every run it holds keeps its lease.
    pub async fn beat(&self, db: &DatabaseConnection) -> anyhow::Result<()> {
        workers::beat(db, &self.worker).await?;
        let held: Vec<Uuid> = self.lock().iter().copied().collect();
        outbox::renew(db, &self.worker.name, &held, self.lease).await?;
        Ok(())
    }

    /// Heart-beats every `every` until `stop`, then leaves `workers`.
    pub async fn heartbeat(self, db: DatabaseConnection, every: Duration, stop: CancellationToken) {
        loop {
            if let Err(e) = self.beat(&db).await {
                tracing::warn!(error = %format!("{e:#}"), "worker heartbeat failed; retrying");
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
        if let Err(e) = workers::leave(&db, &self.worker.name).await {
            tracing::warn!(error = %e, "could not deregister the worker");
        }
    }
}
