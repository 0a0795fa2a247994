//! A connection to the primary that Sentinels name, following it across failovers.
//!
//! The redis crate finds the primary through the Sentinels but gives a plain multiplexed
//! connection that stays pointed at the old address once the primary dies. Here a call that
//! fails the way a lost or demoted primary fails (I/O, timeout, `READONLY`, `MASTERDOWN`)
//! drops the connection, and the next call asks the Sentinels again. The failed call is not
//! retried: callers already back off and retry, and a blind retry could repeat a script
//! that did run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionInfo, ErrorKind, Pipeline, RedisConnectionInfo,
    RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

/// How long asking the Sentinels and connecting to the primary may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A cloneable connection to the current primary.
#[derive(Clone)]
pub struct SentinelConn {
    shared: Arc<Shared>,
}

struct Shared {
    /// Held while asking the Sentinels, so that one lookup serves every waiting call.
    sentinels: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<Current>>,
    /// The generation of the next connection.
    generations: AtomicU64,
    config: AsyncConnectionConfig,
    master: String,
}

#[derive(Clone)]
struct Current {
    /// Bumped with every new connection, so that a late error of an old one drops nothing.
    generation: u64,
    conn: MultiplexedConnection,
}

impl SentinelConn {
    /// Asks `sentinels` for `master` and connects to it with `node`'s credentials.
    pub async fn connect(
        sentinels: Vec<ConnectionInfo>,
        master: String,
        node: RedisConnectionInfo,
        config: AsyncConnectionConfig,
    ) -> RedisResult<Self> {
        let client = SentinelClient::build(
            sentinels,
            master.clone(),
            Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(node)),
            SentinelServerType::Master,
        )?;
        let conn = Self {
            shared: Arc::new(Shared {
                sentinels: tokio::sync::Mutex::new(client),
                current: Mutex::new(None),
                generations: AtomicU64::new(1),
                config,
                master,
            }),
        };
        conn.current().await?;
        Ok(conn)
    }

    /// A client for the current primary (for a pub/sub connection of its own).
    pub async fn master_client(&self) -> RedisResult<Client> {
        let mut sentinels = self.shared.sentinels.lock().await;
        within(sentinels.async_get_client()).await
    }

    /// The live connection, or a new one to the primary the Sentinels name now.
    async fn current(&self) -> RedisResult<Current> {
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        let mut sentinels = self.shared.sentinels.lock().await;
        // Another call may have connected while this one waited for the lock.
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        let client = within(sentinels.async_get_client()).await?;
        let conn = within(client.get_multiplexed_async_connection_with_config(&self.shared.config))
            .await?;
        let generation = self.shared.generations.fetch_add(1, Ordering::Relaxed);
        let current = Current { generation, conn };
        *self.lock() = Some(current.clone());
        tracing::info!(
            redis.master = %self.shared.master,
            redis.addr = %client.get_connection_info().addr(),
            "connected to the Redis primary named by Sentinel"
        );
        Ok(current)
    }

    fn cached(&self) -> Option<Current> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Current>> {
        self.shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// After a failed call on connection `generation`: forget it if the primary looks gone.
    fn failed(&self, generation: u64, error: &RedisError) {
        if !primary_lost(error) {
            return;
        }
        let mut slot = self.lock();
        if slot.as_ref().is_some_and(|c| c.generation == generation) {
            *slot = None;
            drop(slot);
            tracing::warn!(
                redis.master = %self.shared.master,
                error = %error,
                "lost the Redis primary; asking the Sentinels again"
            );
        }
    }
}

/// Errors after which the connection no longer reaches a writable primary.
fn primary_lost(error: &RedisError) -> bool {
    error.is_unrecoverable_error()
        || error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || matches!(
            error.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

/// `future`, or an I/O time-out error after [`RESOLVE_TIMEOUT`].
async fn within<T>(future: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    match tokio::time::timeout(RESOLVE_TIMEOUT, future).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out finding the Redis primary through Sentinel",
        ))),
    }
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let Current {
                generation,
                mut conn,
            } = self.current().await?;
            let result = conn.req_packed_command(cmd).await;
            if let Err(e) = &result {
                self.failed(generation, e);
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let Current {
                generation,
                mut conn,
            } = self.current().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &result {
                self.failed(generation, e);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.cached().map_or(0, |c| c.conn.get_db())
    }
}
