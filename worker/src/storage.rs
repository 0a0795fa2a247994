//! Orderly's Redis queue storage, behind apalis's backend traits.
//!
//! apalis-redis could not be made sound here (its fetch moves every due task in one
//! `RPUSH(unpack(..))`, which fails past ~8 000 ids; any Redis error ends the worker; its
//! orphan check compares heartbeats written with each worker's own clock). This storage
//! keeps only what a bounded window needs, all in one hash slot per queue
//! (`{<prefix>:<queue>}`):
//!
//! - `…:ready`, a list of task ids waiting for a worker;
//! - `…:data`, a hash of task id → job bytes;
//! - `…:inflight:<worker>`, a set per worker of the tasks it fetched;
//! - `…:workers`, a sorted set of workers by their last heartbeat, in **Redis's** clock;
//! - `…:paused`, present while an operator has the queue paused (fetches take nothing).
//!
//! Because every key of a queue shares the tag, each queue lives in one Redis Cluster slot:
//! every script names all the keys it touches in KEYS (never builds one inside Lua) and every
//! pipeline stays within one queue, so a cluster routes each call to one node and accepts it.
//!
//! Every script is O(its batch): a fetch pops at most `batch` ids whatever the backlog
//! (PostgreSQL holds the backlog; the relay keeps Redis to a window). A worker whose
//! heartbeat is older than `orphan_after` has its fetched tasks put back on `ready` by the
//! next live worker's heartbeat; PostgreSQL's fence at the start of every run
//! (`outbox::start_many`) turns any copy that is stale into a no-op. Redis errors never end
//! a worker: they are logged, the call backs off, and the worker goes on when Redis does.

use std::sync::LazyLock;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use apalis::prelude::{Task, TaskBuilder, TaskId, WorkerContext};
use apalis_codec::json::JsonCodec;
use apalis_core::backend::finalize::Durable;
use apalis_core::backend::future::BoxSyncFuture;
use apalis_core::backend::persistence::{Persisted, Persistence, TaskEvent, TaskPersistLayer};
use apalis_core::backend::{Backend, BackendConfig, WireFormatBackend};
use futures::FutureExt;
use orderly_core::redis_conn::RedisConn;
use orderly_jobs::Queue;
use redis::{RedisError, Script};
use serde_json::Value;

/// The keys of one queue, sharing one hash tag.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    base: String,
}

impl QueueKeys {
    /// The keys of `queue` under `prefix`.
    pub fn new(prefix: &str, queue: Queue) -> Self {
        Self {
            base: orderly_jobs::pauses::queue_tag(prefix, queue),
        }
    }

    /// Exists while an operator has the queue paused: fetches take nothing.
    pub fn paused(&self) -> String {
        format!("{}:paused", self.base)
    }

    /// Task ids waiting for a worker.
    pub fn ready(&self) -> String {
        format!("{}:ready", self.base)
    }

    /// Task id → job bytes.
    pub fn data(&self) -> String {
        format!("{}:data", self.base)
    }

    /// Workers by last heartbeat (Redis seconds).
    pub fn workers(&self) -> String {
        format!("{}:workers", self.base)
    }

    /// `worker`'s in-flight set.
    pub fn inflight(&self, worker: &str) -> String {
        format!("{}:inflight:{worker}", self.base)
    }

    /// The pub/sub channel that wakes the queue's workers after a push.
    pub fn wake_channel(&self) -> String {
        format!("{}:wake", self.base)
    }
}

/// Storage tuning.
#[derive(Debug, Clone, Copy)]
pub struct StorageConfig {
    /// Most tasks one fetch takes.
    pub batch: usize,
    /// How often a worker heart-beats.
    pub heartbeat: Duration,
    /// A worker silent this long (Redis's clock) is dead: its fetched tasks go back.
    pub orphan_after: Duration,
}

/// Registers or heart-beats ARGV[1] at Redis's time and returns up to 20 workers silent for
/// ARGV[2] seconds. KEYS: workers.
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, 20)
",
    )
});

/// Puts back on the ready list (KEYS[2]) the fetched tasks of workers ARGV[2..], whose
/// in-flight sets are KEYS[3..] in the same order, and drops them from the workers set
/// (KEYS[1]); a worker that heart-beat again within ARGV[1] seconds since
/// [`HEARTBEAT`] named it keeps its tasks. Every key is passed in KEYS (a cluster routes
/// and checks scripts by them). Returns how many tasks moved.
static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(redis.call('TIME')[1])
local moved = 0
for i = 2, #ARGV do
  local worker = ARGV[i]
  local seen = redis.call('ZSCORE', KEYS[1], worker)
  if seen and tonumber(seen) <= now - tonumber(ARGV[1]) then
    local set = KEYS[i + 1]
    while true do
      local ids = redis.call('SPOP', set, 500)
      if #ids == 0 then break end
      redis.call('RPUSH', KEYS[2], unpack(ids))
      moved = moved + #ids
    end
    redis.call('ZREM', KEYS[1], worker)
  end
end
return moved
",
    )
});

/// Pops up to ARGV[2] ready ids into worker ARGV[1]'s in-flight set and returns
/// `[id, data, id, data, …]`; ids whose data is gone (already finished) are dropped.
/// Takes nothing while the queue's paused flag exists. KEYS: workers, ready, in-flight
/// set, data, paused flag.
static FETCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZADD', KEYS[1], tonumber(redis.call('TIME')[1]), ARGV[1])
if redis.call('EXISTS', KEYS[5]) == 1 then return {} end
local ids = redis.call('LPOP', KEYS[2], tonumber(ARGV[2]))
if not ids then return {} end
local data = redis.call('HMGET', KEYS[4], unpack(ids))
local out, held = {}, {}
for i, id in ipairs(ids) do
  if data[i] then
    held[#held + 1] = id
    out[#out + 1] = id
    out[#out + 1] = data[i]
  end
end
if #held > 0 then redis.call('SADD', KEYS[3], unpack(held)) end
return out
",
    )
});

/// Finishes tasks ARGV[1..]: out of the in-flight set (KEYS[1]) and their data (KEYS[2]).
static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SREM', KEYS[1], unpack(ARGV))
redis.call('HDEL', KEYS[2], unpack(ARGV))
return #ARGV
",
    )
});

/// Hands tasks ARGV[1..] back to the front of the ready list (KEYS[2]) from the in-flight
/// set (KEYS[1]), if they are still held.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for _, id in ipairs(ARGV) do
  if redis.call('SREM', KEYS[1], id) == 1 then
    redis.call('LPUSH', KEYS[2], id)
    n = n + 1
  end
end
return n
",
    )
});

/// A worker leaving: its remaining fetched tasks go back to the ready list, and it leaves
/// the workers set. KEYS: workers, ready, in-flight set. ARGV[1]: the worker.
static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
while true do
  local ids = redis.call('SPOP', KEYS[3], 500)
  if #ids == 0 then break end
  redis.call('LPUSH', KEYS[2], unpack(ids))
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
",
    )
});

/// Adds tasks: ARGV holds `id, bytes` pairs; an id the queue still holds (or that comes
/// twice) adds nothing. Three commands whatever the batch. KEYS: data, ready. Returns how
/// many were new.
static PUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ids = {}
for i = 1, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local held = redis.call('HMGET', KEYS[1], unpack(ids))
local seen, new, fields = {}, {}, {}
for i, id in ipairs(ids) do
  if not held[i] and not seen[id] then
    seen[id] = true
    new[#new + 1] = id
    fields[#fields + 1] = id
    fields[#fields + 1] = ARGV[2 * i]
  end
end
if #new > 0 then
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('RPUSH', KEYS[2], unpack(new))
end
return #new
",
    )
});

/// The most tasks one push script takes (Lua's `unpack` has a limit of a few thousand).
const PUSH_CHUNK: usize = 500;

/// Pushes `(task id, bytes)` pairs onto the queue; returns how many were new.
pub async fn push(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    tasks: &[(String, Vec<u8>)],
) -> Result<u64, RedisError> {
    let mut new = 0;
    for chunk in tasks.chunks(PUSH_CHUNK) {
        let mut call = PUSH.key(keys.data());
        call.key(keys.ready());
        for (id, bytes) in chunk {
            call.arg(id).arg(bytes);
        }
        new += call.invoke_async::<u64>(conn).await?;
    }
    Ok(new)
}

/// Which of `ids` the queue no longer holds at all (neither waiting nor fetched).
pub async fn missing(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    ids: &[String],
) -> Result<Vec<bool>, RedisError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.hexists(keys.data(), id);
    }
    let held: Vec<bool> = pipe.query_async(conn).await?;
    Ok(held.into_iter().map(|h| !h).collect())
}

/// The persistence half: what apalis's [`Persisted`] drives.
#[derive(Clone)]
pub struct QueuePersistence {
    conn: RedisConn,
    keys: QueueKeys,
    config: StorageConfig,
}

impl std::fmt::Debug for QueuePersistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuePersistence")
            .field("keys", &self.keys)
            .field("config", &self.config)
            .finish()
    }
}

/// How long a failed Redis call waits before the worker goes on.
const BACKOFF: Duration = Duration::from_secs(1);

impl QueuePersistence {
    async fn heartbeat_now(&mut self, worker: &str) {
        match self.beat_and_reap(worker).await {
            Ok(0) => {}
            Ok(moved) => {
                tracing::warn!(
                    worker,
                    tasks = moved,
                    "handed back the fetched tasks of a worker that stopped heart-beating"
                );
                metrics::counter!("queue_orphans_recovered_total").increment(moved);
            }
            Err(e) => {
                tracing::warn!(worker, error = %e, "queue heartbeat failed; retrying");
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }

    /// Heart-beats `worker`, then hands back the tasks of the workers found silent: two
    /// scripts, so that the second can name every in-flight set it touches in KEYS.
    async fn beat_and_reap(&mut self, worker: &str) -> Result<u64, RedisError> {
        let orphan_after = self.config.orphan_after.as_secs().max(1);
        let dead: Vec<String> = HEARTBEAT
            .key(self.keys.workers())
            .arg(worker)
            .arg(orphan_after)
            .invoke_async(&mut self.conn)
            .await?;
        if dead.is_empty() {
            return Ok(0);
        }
        let mut reap = REAP.key(self.keys.workers());
        reap.key(self.keys.ready());
        for dead in &dead {
            reap.key(self.keys.inflight(dead));
        }
        reap.arg(orphan_after).arg(&dead);
        reap.invoke_async(&mut self.conn).await
    }
}

impl Persistence for QueuePersistence {
    type Compact = Vec<u8>;
    type Response = Value;
    type Error = RedisError;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), RedisError> {
        self.heartbeat_now(worker.name()).await;
        Ok(())
    }

    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), RedisError> {
        self.heartbeat_now(worker.name()).await;
        Ok(())
    }

    async fn fetch_next(
        &mut self,
        worker: &WorkerContext,
    ) -> Result<Vec<Task<Vec<u8>>>, RedisError> {
        let result: Result<Vec<Vec<u8>>, RedisError> = FETCH
            .key(self.keys.workers())
            .key(self.keys.ready())
            .key(self.keys.inflight(worker.name()))
            .key(self.keys.data())
            .key(self.keys.paused())
            .arg(worker.name())
            .arg(self.config.batch.max(1))
            .invoke_async(&mut self.conn)
            .await;
        match result {
            Ok(flat) => Ok(flat
                .chunks_exact(2)
                .map(|pair| {
                    let id = String::from_utf8_lossy(&pair[0]).into_owned();
                    TaskBuilder::new(pair[1].clone())
                        .task_id(TaskId::from_string(id))
                        .build()
                })
                .collect()),
            Err(e) => {
                tracing::warn!(worker = worker.name(), error = %e, "fetching from the queue failed; retrying");
                tokio::time::sleep(BACKOFF).await;
                Ok(Vec::new())
            }
        }
    }

    async fn reenqueue_abandoned(
        &mut self,
        tasks: Vec<Task<Vec<u8>>>,
        worker: &WorkerContext,
    ) -> Result<u64, RedisError> {
        let ids: Vec<String> = tasks
            .iter()
            .filter_map(|t| t.task_id().map(|id| id.to_string()))
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let result = RELEASE
            .key(self.keys.inflight(worker.name()))
            .key(self.keys.ready())
            .arg(&ids)
            .invoke_async(&mut self.conn)
            .await;
        // A failure leaves them in the in-flight set: put back when this worker is gone.
        Ok(result.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "handing back unstarted tasks failed");
            0
        }))
    }

    async fn handle_events(
        &mut self,
        events: Vec<TaskEvent<Value>>,
        worker: &WorkerContext,
    ) -> Result<(), RedisError> {
        let ids: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                TaskEvent::Complete(result) => Some(result.task_id.to_string()),
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        for attempt in 1..=3 {
            let result: Result<u64, RedisError> = ACK
                .key(self.keys.inflight(worker.name()))
                .key(self.keys.data())
                .arg(&ids)
                .invoke_async(&mut self.conn)
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) => {
                    // PostgreSQL already holds each task's end; a task left in Redis is
                    // fenced out if it is ever fetched again.
                    tracing::warn!(worker = worker.name(), attempt, error = %e, "acknowledging finished tasks failed");
                    tokio::time::sleep(BACKOFF).await;
                }
            }
        }
        Ok(())
    }

    async fn push_tasks(&mut self, tasks: Vec<Task<Vec<u8>>>) -> Result<(), RedisError> {
        let pairs: Vec<(String, Vec<u8>)> = tasks
            .into_iter()
            .map(|t| {
                let id = t
                    .task_id()
                    .map(|id| id.to_string())
                    .unwrap_or_else(|| ulid::Ulid::generate().to_string());
                (id, t.args)
            })
            .collect();
        push(&mut self.conn, &self.keys, &pairs).await.map(|_| ())
    }
}

/// One queue's storage, as a worker drains it.
pub struct QueueStorage<Args> {
    persist: Persisted<QueuePersistence>,
    codec: JsonCodec,
    leaving: Option<BoxSyncFuture<Result<(), RedisError>>>,
    _args: std::marker::PhantomData<fn() -> Args>,
}

impl<Args> std::fmt::Debug for QueueStorage<Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueStorage")
            .field("keys", &self.persist.keys)
            .finish()
    }
}

impl<Args> Clone for QueueStorage<Args> {
    fn clone(&self) -> Self {
        Self {
            persist: self.persist.clone(),
            codec: self.codec.clone(),
            leaving: None,
            _args: std::marker::PhantomData,
        }
    }
}

impl<Args> QueueStorage<Args> {
    /// The storage of the queue with `keys`.
    pub fn new(conn: RedisConn, keys: QueueKeys, config: StorageConfig) -> Self {
        Self {
            persist: Persisted::new(QueuePersistence { conn, keys, config }),
            codec: JsonCodec::default(),
            leaving: None,
            _args: std::marker::PhantomData,
        }
    }
}

impl<Args> Backend for QueueStorage<Args> {
    type Task = Task<Vec<u8>>;
    type Error = RedisError;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), RedisError>> {
        let heartbeat = self.persist.config.heartbeat;
        self.persist.poll_ready(cx, worker, heartbeat)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, RedisError>>> {
        self.persist.poll_next(cx, worker)
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), RedisError>> {
        if self.leaving.is_none() {
            ready!(self.persist.poll_close(cx, worker))?;
            let mut conn = self.persist.conn.clone();
            let keys = self.persist.keys.clone();
            let name = worker.name().to_owned();
            self.leaving = Some(
                async move {
                    if let Err(e) = LEAVE
                        .key(keys.workers())
                        .key(keys.ready())
                        .key(keys.inflight(&name))
                        .arg(&name)
                        .invoke_async::<i64>(&mut conn)
                        .await
                    {
                        tracing::warn!(worker = %name, error = %e, "leaving the queue failed; a live worker will hand back its tasks");
                    }
                    Ok(())
                }
                .boxed()
                .into(),
            );
        }
        match self.leaving.as_mut() {
            Some(leaving) => leaving.poll_unpin(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<Args> BackendConfig for QueueStorage<Args> {
    type Args = Args;
    type Id = ulid::Ulid;
    type Kind = Durable;
    type Config = StorageConfig;
    type Layer = TaskPersistLayer<JsonCodec<Value>, Value>;

    fn config(&self) -> &StorageConfig {
        &self.persist.config
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        let batch = self.persist.config.batch;
        self.persist
            .layer(JsonCodec::<Value>::default(), batch)
            .persist_results(true)
            .lock_tasks(false)
    }
}

impl<Args> WireFormatBackend for QueueStorage<Args> {
    type Codec = JsonCodec;
    type Compact = Vec<u8>;

    fn codec(&self) -> &JsonCodec {
        &self.codec
    }
}
