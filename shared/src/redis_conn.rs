//! Redis connections and the key namespace.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;

use crate::config::Settings;

/// Opens a self-reconnecting connection and checks that the server answers.
pub async fn connect(settings: &Settings) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(settings.redis_url.expose_secret())
        .context("REDIS_URL is not a valid Redis URL")?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(3)));
    let mut conn = tokio::time::timeout(
        Duration::from_secs(5),
        ConnectionManager::new_with_config(client, config),
    )
    .await
    .context("timed out connecting to Redis at REDIS_URL")?
    .context("cannot connect to Redis at REDIS_URL")?;
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .context("Redis at REDIS_URL does not answer PING")?;
    Ok(conn)
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
