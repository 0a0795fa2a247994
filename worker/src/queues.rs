//! The Redis queues: one [`storage::QueueStorage`] per queue, under `{<REDIS_PREFIX>:<queue>}`,
//! and the [`Transport`] the relay and reconciler use to reach them.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use orderly_core::redis_conn::RedisConn;
use orderly_jobs::outbox::Pushed;
use orderly_jobs::{Envelope, Queue};

use crate::storage::{self, QueueKeys, QueueStorage, StorageConfig};
use crate::transport::Transport;

/// Timings shared by every queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueTimings {
    /// How often a worker says it is alive.
    pub heartbeat: Duration,
    /// Missed heartbeats after which a worker's fetched tasks are handed to others.
    pub missed_heartbeats: usize,
}

impl QueueTimings {
    /// How long a dead worker's fetched tasks wait before they are handed to others.
    pub fn orphan_after(&self) -> Duration {
        self.heartbeat * self.missed_heartbeats as u32
    }
}

/// The storage a worker of `queue` drains, fetching up to `batch` tasks at a time.
pub fn storage(
    conn: RedisConn,
    prefix: &str,
    queue: Queue,
    timings: QueueTimings,
    batch: usize,
) -> QueueStorage<Envelope> {
    QueueStorage::new(
        conn,
        QueueKeys::new(prefix, queue),
        StorageConfig {
            batch: batch.max(1),
            heartbeat: timings.heartbeat,
            orphan_after: timings.orphan_after(),
        },
    )
}

/// Pushes jobs with the storage's push script and wakes the queue's workers.
#[derive(Clone)]
pub struct RedisTransport {
    conn: RedisConn,
    prefix: String,
}

impl std::fmt::Debug for RedisTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTransport")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisTransport {
    /// A transport for the queues under `prefix`.
    pub fn new(conn: RedisConn, prefix: String) -> Self {
        Self { conn, prefix }
    }
}

#[async_trait]
impl Transport for RedisTransport {
    async fn push(&self, queue: Queue, jobs: &[Envelope]) -> anyhow::Result<()> {
        let keys = QueueKeys::new(&self.prefix, queue);
        let tasks = jobs
            .iter()
            .map(|job| {
                Ok((
                    job.task_id(),
                    serde_json::to_vec(job).context("serialising a job")?,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut conn = self.conn.clone();
        storage::push(&mut conn, &keys, &tasks)
            .await
            .context("pushing to Redis")?;
        redis::cmd("PUBLISH")
            .arg(keys.wake_channel())
            .arg(1)
            .query_async::<i64>(&mut conn)
            .await
            .context("waking the queue's workers")?;
        Ok(())
    }

    async fn waiting(&self, queues: &[Queue]) -> anyhow::Result<Vec<u64>> {
        // One command per queue, sent together: each queue lives in its own cluster slot,
        // so a pipeline over several could span nodes.
        let lengths = queues.iter().map(|&queue| {
            let mut conn = self.conn.clone();
            let ready = QueueKeys::new(&self.prefix, queue).ready();
            async move {
                redis::cmd("LLEN")
                    .arg(ready)
                    .query_async::<u64>(&mut conn)
                    .await
            }
        });
        futures::future::try_join_all(lengths)
            .await
            .context("reading the queues' lengths")
    }

    async fn lost(&self, queue: Queue, jobs: &[Pushed]) -> anyhow::Result<Vec<Pushed>> {
        let keys = QueueKeys::new(&self.prefix, queue);
        let ids: Vec<String> = jobs.iter().map(|j| j.task_id.clone()).collect();
        let mut conn = self.conn.clone();
        let missing = storage::missing(&mut conn, &keys, &ids)
            .await
            .context("checking held jobs")?;
        Ok(jobs
            .iter()
            .zip(missing)
            .filter(|(_, missing)| *missing)
            .map(|(job, _)| job.clone())
            .collect())
    }

    async fn set_paused(&self, paused: &[Queue]) -> anyhow::Result<()> {
        // Per queue, for the same reason as `waiting`.
        let writes = Queue::ALL.into_iter().map(|queue| {
            let mut conn = self.conn.clone();
            let pausing = paused.contains(&queue);
            let mut write = redis::cmd(if pausing { "SET" } else { "DEL" });
            write.arg(QueueKeys::new(&self.prefix, queue).paused());
            if pausing {
                write.arg(1);
            }
            async move { write.query_async::<()>(&mut conn).await }
        });
        futures::future::try_join_all(writes)
            .await
            .map(|_| ())
            .context("writing the queues' paused flags")
    }
}
