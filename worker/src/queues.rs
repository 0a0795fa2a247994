//! The Redis queues: one apalis-redis storage per queue, named `<REDIS_PREFIX>:<queue>`, and
//! the [`Transport`] the relay and reconciler use to reach them.

use std::time::Duration;

use anyhow::Context;
use apalis::prelude::{TaskBuilder, TaskId};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use async_trait::async_trait;
use orderly_shared::jobs::{Envelope, Queue};
use uuid::Uuid;

use crate::transport::Transport;
use crate::wake;

/// Timings shared by every queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueTimings {
    /// How often a worker says it is alive.
    pub heartbeat: Duration,
    /// Missed heartbeats after which a worker's jobs are handed to others.
    pub missed_heartbeats: usize,
}

impl QueueTimings {
    /// How long a dead worker's jobs wait before they are re-queued.
    pub fn orphan_after(&self) -> Duration {
        self.heartbeat * self.missed_heartbeats as u32
    }
}

/// The Redis key of a queue.
pub fn queue_key(prefix: &str, queue: Queue) -> String {
    format!("{prefix}:{}", queue.as_str())
}

/// The apalis-redis configuration of a queue.
pub fn config(prefix: &str, queue: Queue, timings: QueueTimings, batch: usize) -> Config {
    Config::default()
        .queue(queue_key(prefix, queue))
        .batch_size(batch.max(1))
        .heartbeat_interval(timings.heartbeat)
        .missed_heartbeats(timings.missed_heartbeats)
}

/// The storage a worker of `queue` drains.
pub fn storage(conn: ConnectionManager, config: Config) -> RedisStorage<Envelope> {
    RedisStorage::new(conn).with_config(config)
}

/// Pushes jobs with apalis-redis's own push script (so workers see ordinary tasks) and
/// wakes the queue's workers.
#[derive(Clone)]
pub struct RedisTransport {
    conn: ConnectionManager,
    prefix: String,
    timings: QueueTimings,
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
    pub fn new(conn: ConnectionManager, prefix: String, timings: QueueTimings) -> Self {
        Self {
            conn,
            prefix,
            timings,
        }
    }
}

#[async_trait]
impl Transport for RedisTransport {
    async fn push(&self, queue: Queue, jobs: &[Envelope]) -> anyhow::Result<()> {
        let config = config(&self.prefix, queue, self.timings, 1);
        let tasks = jobs
            .iter()
            .map(|job| {
                let bytes = serde_json::to_vec(job).context("serialising a job")?;
                Ok(TaskBuilder::new(bytes)
                    .task_id(TaskId::from_string(job.task_id()))
                    .build())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut conn = self.conn.clone();
        apalis_redis::queries::push_tasks(&mut conn, &config, &tasks)
            .await
            .context("apalis-redis push")?;
        redis::cmd("PUBLISH")
            .arg(wake::channel(&queue_key(&self.prefix, queue)))
            .arg(1)
            .query_async::<i64>(&mut conn)
            .await
            .context("waking the queue's workers")?;
        Ok(())
    }

    async fn missing(&self, queue: Queue, jobs: &[(Uuid, String)]) -> anyhow::Result<Vec<Uuid>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let data = config(&self.prefix, queue, self.timings, 1).job_data_hash();
        let mut pipe = redis::pipe();
        for (_, task_id) in jobs {
            pipe.hexists(&data, task_id);
        }
        let mut conn = self.conn.clone();
        let held: Vec<bool> = pipe
            .query_async(&mut conn)
            .await
            .context("checking held jobs")?;
        Ok(jobs
            .iter()
            .zip(held)
            .filter(|(_, held)| !held)
            .map(|((id, _), _)| *id)
            .collect())
    }
}
