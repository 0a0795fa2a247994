//! What every Orderly binary shares: typed configuration, database entities, domain rules,
//! connections, telemetry and the e-mail templates.

pub mod batcher;
pub mod config;
pub mod db;
pub mod domain;
pub mod entities;
pub mod jobs;
pub mod leases;
pub mod providers;
pub mod redis_conn;
pub mod schedules;
pub mod shutdown;
pub mod telemetry;
pub mod templates;

pub use config::Settings;

#[cfg(any(test, feature = "testing"))]
#[allow(clippy::expect_used, clippy::panic)]
pub mod testing;
