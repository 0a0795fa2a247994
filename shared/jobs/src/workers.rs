//! The live worker processes, heart-beaten into PostgreSQL with its clock: the relay sizes
//! each queue's Redis window from their concurrency, and operators see who drains what.

use std::time::Duration;

use orderly_db::sql::stmt;
use sea_orm::{ConnectionTrait, DbErr};

use super::Queue;

/// A worker process as it registers itself.
#[derive(Debug, Clone)]
pub struct WorkerProcess {
    /// Unique per process (host, pid and a ULID).
    pub name: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// The queues it drains, with their concurrency.
    pub queues: Vec<(Queue, usize)>,
}

/// Registers `worker`, or records that it is still alive.
pub async fn beat(db: &impl ConnectionTrait, worker: &WorkerProcess) -> Result<(), DbErr> {
    let queues: Vec<String> = worker
        .queues
        .iter()
        .map(|(q, _)| q.as_str().to_owned())
        .collect();
    let concurrency: Vec<i32> = worker
        .queues
        .iter()
        .map(|(_, n)| i32::try_from(*n).unwrap_or(i32::MAX))
        .collect();
    db.execute_raw(stmt(
        &HEARTBEAT,
        vec![
            worker.name.clone().into(),
            worker.host.clone().into(),
            i64::from(worker.pid).into(),
            queues.into(),
            concurrency.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Removes `name` (a graceful stop).
pub async fn leave(db: &impl ConnectionTrait, name: &str) -> Result<(), DbErr> {
    db.execute_raw(stmt(&DEREGISTER, vec![name.to_owned().into()]))
        .await?;
    Ok(())
}

/// Forgets workers silent for longer than `after`.
pub async fn prune(db: &impl ConnectionTrait, after: Duration) -> Result<u64, DbErr> {
    let result = db
        .execute_raw(stmt(&FORGET_SILENT, vec![after.as_secs_f64().into()]))
        .await?;
    Ok(result.rows_affected())
}

orderly_db::sql! {
    HEARTBEAT = "INSERT INTO workers (name, host, pid, queues, concurrency)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET heartbeat_at = now()";

    DEREGISTER = "DELETE FROM workers WHERE name = $1";

    FORGET_SILENT = "DELETE FROM workers WHERE heartbeat_at < now() - make_interval(secs => $1)";
}
