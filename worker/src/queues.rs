//! The Redis queues: one [`storage::QueueStorage`] per queue, under `{<REDIS_PREFIX>:<queue>}`,
//! and the [`Transport`] the relay and reconciler use to reach them.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use orderly_shared::jobs::outbox::Pushed;
use orderly_shared::jobs::{Envelope, Queue};
use redis::aio::ConnectionManager;

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
    conn: ConnectionManager,
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
    conn: ConnectionManager,
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
    pub fn new(conn: ConnectionManager, prefix: String) -> Self {
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
        let mut pipe = redis::pipe();
        for &queue in queues {
            pipe.llen(QueueKeys::new(&self.prefix, queue).ready());
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn)
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
        let mut pipe = redis::pipe();
        for queue in Queue::ALL {
            let key = QueueKeys::new(&self.prefix, queue).paused();
            if paused.contains(&queue) {
                pipe.set(key, 1).ignore();
            } else {
                pipe.del(key).ignore();
            }
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .context("writing the queues' paused flags")
    }
}
