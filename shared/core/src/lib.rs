//! The ground floor every Orderly binary stands on: typed settings, the PostgreSQL and Redis
//! connections, telemetry, graceful shutdown, Redis leases and the batcher.

pub mod batcher;
pub mod config;
pub mod db;
pub mod leases;
pub mod redis_conn;
pub mod redis_target;
pub mod shutdown;
pub mod telemetry;

pub use config::Settings;
