//! Redis connections and the key namespace.
//!
//! `REDIS_URL` names one server, a Redis Cluster or a primary watched by Sentinels
//! ([`crate::redis_target`] has the forms). Every process talks to it through
//! [`RedisConn`], which reconnects by itself in each case: to the same server, to whichever
//! cluster node owns a slot now (following `MOVED`/`ASK`), or to the primary the Sentinels
//! promoted. Every key of a queue shares one hash tag (`{<prefix>:<queue>}`), so each queue
//! lives in one slot and its scripts and pipelines stay legal in a cluster.

mod sentinel;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionInfo, Pipeline, RedisError, RedisFuture, Value,
};

use crate::config::Settings;
pub use crate::redis_target::{RedisTarget, RedisUrlError};
pub use sentinel::SentinelConn;

/// How long one connection attempt and one reply may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long start-up waits for Redis before it gives up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A cloneable, self-reconnecting connection to the deployment's Redis, whatever its shape.
/// Clones share the underlying connections (they are multiplexed).
#[derive(Clone)]
pub struct RedisConn {
    inner: Inner,
    target: Arc<RedisTarget>,
    /// The cluster node the next pub/sub connection tries first.
    next_node: Arc<AtomicUsize>,
}

#[derive(Clone)]
enum Inner {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConn),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn")
            .field("target", &self.target)
            .finish()
    }
}

/// Connects to `REDIS_URL` and checks that Redis answers.
pub async fn connect(settings: &Settings) -> anyhow::Result<RedisConn> {
    RedisConn::connect_to(settings.redis.clone()).await
}

impl RedisConn {
    /// Connects to `url` (a `REDIS_URL`) and checks that Redis answers.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let target = RedisTarget::parse(url).context("REDIS_URL")?;
        Self::connect_to(target).await
    }

    /// Connects to `target` and checks that Redis answers.
    pub async fn connect_to(target: RedisTarget) -> anyhow::Result<Self> {
        let inner = tokio::time::timeout(START_TIMEOUT, open_inner(&target))
            .await
            .context("timed out connecting to Redis at REDIS_URL")?
            .context("cannot connect to Redis at REDIS_URL")?;
        let mut conn = Self {
            inner,
            target: Arc::new(target),
            next_node: Arc::new(AtomicUsize::new(0)),
        };
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .context("Redis at REDIS_URL does not answer PING")?;
        Ok(conn)
    }

    /// Where this connection goes.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// A new pub/sub connection: to the server, to the first reachable cluster node (a
    /// classic `PUBLISH` reaches every node of a cluster), or to the current primary.
    /// It does not reconnect: on an error, ask for a new one.
    pub async fn pubsub(&self) -> Result<PubSub, RedisError> {
        if let Inner::Sentinel(conn) = &self.inner {
            return open_pubsub(conn.master_client().await).await;
        }
        let nodes: &[ConnectionInfo] = match &*self.target {
            RedisTarget::Single(info) => std::slice::from_ref(info),
            RedisTarget::Cluster { nodes } => nodes,
            RedisTarget::Sentinel { .. } => &[],
        };
        // Round the nodes, starting one further each time, so a dead node is not always first.
        let start = self.next_node.fetch_add(1, Ordering::Relaxed);
        let mut last = RedisError::from((redis::ErrorKind::InvalidClientConfig, "no Redis node"));
        for i in 0..nodes.len() {
            match open_pubsub(Client::open(nodes[(start + i) % nodes.len()].clone())).await {
                Ok(pubsub) => return Ok(pubsub),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

async fn open_pubsub(client: Result<Client, RedisError>) -> Result<PubSub, RedisError> {
    let client = client?;
    match tokio::time::timeout(CALL_TIMEOUT, client.get_async_pubsub()).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out opening a pub/sub connection",
        ))),
    }
}

async fn open_inner(target: &RedisTarget) -> Result<Inner, RedisError> {
    match target {
        RedisTarget::Single(info) => {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CALL_TIMEOUT))
                .set_response_timeout(Some(CALL_TIMEOUT));
            let client = Client::open(info.clone())?;
            Ok(Inner::Single(
                ConnectionManager::new_with_config(client, config).await?,
            ))
        }
        RedisTarget::Cluster { nodes } => {
            let client = ClusterClient::builder(nodes.clone())
                .connection_timeout(CALL_TIMEOUT)
                .response_timeout(CALL_TIMEOUT)
                .build()?;
            Ok(Inner::Cluster(client.get_async_connection().await?))
        }
        RedisTarget::Sentinel {
            sentinels,
            master,
            node,
        } => {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CALL_TIMEOUT))
                .set_response_timeout(Some(CALL_TIMEOUT));
            Ok(Inner::Sentinel(
                SentinelConn::connect(sentinels.clone(), master.clone(), node.clone(), config)
                    .await?,
            ))
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            Inner::Single(conn) => conn.req_packed_command(cmd),
            Inner::Cluster(conn) => conn.req_packed_command(cmd),
            Inner::Sentinel(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            Inner::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Inner::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Inner::Sentinel(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Single(conn) => conn.get_db(),
            Inner::Cluster(conn) => conn.get_db(),
            Inner::Sentinel(conn) => conn.get_db(),
        }
    }
}

/// Builds a namespaced key: `{prefix}:{part}:{part}...`.
pub fn key(prefix: &str, parts: &[&str]) -> String {
    let mut key = String::from(prefix);
    for part in parts {
        key.push(':');
        key.push_str(part);
    }
    key
}
