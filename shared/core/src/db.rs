//! PostgreSQL connection pool, with each binary's time limits on every session.

use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use secrecy::ExposeSecret;

use crate::config::{Binary, Settings};

/// Opens `binary`'s pool and checks that the server answers, failing fast with a clear
/// message.
pub async fn connect(
    settings: &Settings,
    binary: Binary,
    max_connections: u32,
) -> anyhow::Result<DatabaseConnection> {
    connect_with(settings, binary, max_connections, Duration::from_secs(5)).await
}

/// [`connect`], waiting up to `acquire` for a free connection (workers queue for them).
///
/// Every session starts with `binary`'s `statement_timeout`, `lock_timeout` and
/// `idle_in_transaction_session_timeout` (sent in the start-up packet, so no round trip and
/// no session that misses them). `orderly-migrate` connects on its own and has none: its
/// migrations set their own `lock_timeout`.
pub async fn connect_with(
    settings: &Settings,
    binary: Binary,
    max_connections: u32,
    acquire: Duration,
) -> anyhow::Result<DatabaseConnection> {
    let parameters = settings.db_timeouts.for_binary(binary).session_parameters();
    let mut options = ConnectOptions::new(settings.database_url.expose_secret().to_owned());
    options.map_sqlx_postgres_opts(move |pg| pg.options(parameters.clone()));
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(acquire)
        // A ping on every checkout is a round trip per query; ping only connections that
        // sat idle long enough to have been dropped by a restart or a proxy.
        .test_before_acquire_if_idle_for(Duration::from_secs(10))
        .sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .context("cannot connect to PostgreSQL at DATABASE_URL")?;
    db.execute_unprepared("SELECT 1")
        .await
        .context("PostgreSQL at DATABASE_URL does not answer")?;
    Ok(db)
}
