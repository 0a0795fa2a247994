//! What every handler can reach: connections, settings and token keys.

use std::sync::Arc;

use orderly_core::Settings;
use orderly_core::redis_conn::RedisConn;
use orderly_providers::Providers;
use sea_orm::DatabaseConnection;

use crate::auth::TokenKeys;
use crate::rate_limit::LocalCounters;

/// Shared application state, cloned into each worker thread.
#[derive(Clone, Debug)]
pub struct AppState {
    /// PostgreSQL pool.
    pub db: DatabaseConnection,
    /// Redis connection (multiplexed, reconnecting; one server, a cluster or Sentinel's primary).
    pub redis: RedisConn,
    /// Configuration.
    pub settings: Arc<Settings>,
    /// JWT keys.
    pub tokens: TokenKeys,
    /// Payment, mail and SMS clients.
    pub providers: Providers,
    /// The request-rate and login counters of this process, used while Redis is unreachable.
    pub local_counters: Arc<LocalCounters>,
}
