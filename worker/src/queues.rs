//! The Redis queues: one apalis-redis storage per queue, named `<REDIS_PREFIX>:<queue>`, and
//! the [`Transport`] the relay and reconciler use to reach them.

use std::time::Duration;

use anyhow::Context;
use apalis::prelude::{TaskBuilder, TaskId};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use async_trait::async_trait;
use orderly_shared::jobs::outbox::Pushed;
use orderly_shared::jobs::{Envelope, Queue};

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
    orderly_shared::redis_conn::key(prefix, &[queue.as_str()])
}

/// The apalis-redis configuration of a queue.
///
/// Task locks are off: `fetch_next` already moves a fetched task into the worker's
/// in-flight set in the same script, which is what orphan recovery and acks rely on. The
/// lock step only adds board metadata, and its script runs `LREM` over the whole queue
/// list for every task: O(backlog) per job, which made a 50 000-job drain quadratic
/// (Redis spent 18 s of CPU on it). Pub/sub task events are off too: nothing listens,
/// and each would be one more `PUBLISH` per task.
pub fn config(prefix: &str, queue: Queue, timings: QueueTimings, batch: usize) -> Config {
    Config::default()
        .queue(queue_key(prefix, queue))
        .batch_size(batch.max(1))
        .heartbeat_interval(timings.heartbeat)
        .missed_heartbeats(timings.missed_heartbeats)
        .lock_tasks(false)
        .emit_events(false)
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

    async fn lost(&self, queue: Queue, jobs: &[Pushed]) -> anyhow::Result<Vec<Pushed>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let config = config(&self.prefix, queue, self.timings, 1);
        let (data, done, dead) = (
            config.job_data_hash(),
            config.done_jobs_set(),
            config.dead_jobs_set(),
        );
        let mut pipe = redis::pipe();
        for job in jobs {
            pipe.hexists(&data, &job.task_id)
                .sismember(&done, &job.task_id)
                .sismember(&dead, &job.task_id);
        }
        let mut conn = self.conn.clone();
        let answers: Vec<bool> = pipe
            .query_async(&mut conn)
            .await
            .context("checking held jobs")?;
        Ok(jobs
            .iter()
            .zip(answers.chunks(3))
            .filter(|(_, a)| !a[0] || a[1] || a[2])
            .map(|(job, _)| job.clone())
            .collect())
    }

    async fn purge_finished(&self, queue: Queue, cutoff: i64) -> anyhow::Result<u64> {
        let config = config(&self.prefix, queue, self.timings, 1);
        let mut conn = self.conn.clone();
        let removed: u64 = PURGE_FINISHED
            .key(config.done_jobs_set())
            .key(config.dead_jobs_set())
            .key(config.job_data_hash())
            .key(config.job_meta_hash())
            .arg(cutoff)
            .arg(PURGE_SAMPLE)
            .invoke_async(&mut conn)
            .await
            .context("purging finished tasks")?;
        Ok(removed)
    }
}

/// Finished tasks looked at per set by one purge call.
pub const PURGE_SAMPLE: u64 = 500;

/// Removes up to ARGV[2] finished tasks per set whose `done_at` is at or before ARGV[1].
static PURGE_FINISHED: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local removed = 0
for s = 1, 2 do
  local ids = redis.call('SRANDMEMBER', KEYS[s], tonumber(ARGV[2]))
  for _, id in ipairs(ids) do
    local meta = KEYS[4] .. ':' .. id
    local done_at = tonumber(redis.call('HGET', meta, 'done_at') or '0') or 0
    if done_at <= tonumber(ARGV[1]) then
      redis.call('SREM', KEYS[s], id)
      redis.call('HDEL', KEYS[3], id)
      redis.call('DEL', meta)
      removed = removed + 1
    end
  end
end
return removed
",
    )
});
