//! Paused queues: an operator stops a queue's pick-up across every worker process while its
//! running jobs finish. PostgreSQL holds the record (`queue_pauses`; the relay claims
//! nothing for a paused queue); the queue's Redis flag (`{<prefix>:<queue>}:paused`) makes
//! every worker's fetch take nothing of what is already waiting in Redis. The flag is set
//! after the record commits, and the reconciler writes the flags from the record every
//! round, so a failed write or an emptied Redis heals within a round.

use chrono::{DateTime, Utc};
use orderly_db::sql::stmt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use uuid::Uuid;

use orderly_db::audit_log::{self, Actor};

use super::Queue;
use orderly_core::redis_conn::RedisConn;

/// The hash tag every Redis key of `queue` shares: `{<prefix>:<queue>}`.
pub fn queue_tag(prefix: &str, queue: Queue) -> String {
    format!(
        "{{{}}}",
        orderly_core::redis_conn::key(prefix, &[queue.as_str()])
    )
}

/// The Redis flag that stops `queue`'s workers from fetching while it exists.
pub fn flag_key(prefix: &str, queue: Queue) -> String {
    format!("{}:paused", queue_tag(prefix, queue))
}

/// A paused queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// The queue.
    pub queue: Queue,
    /// Who paused it (`null` once that user is deleted).
    pub paused_by: Option<Uuid>,
    /// Since when.
    pub paused_at: DateTime<Utc>,
}

/// Every paused queue.
pub async fn paused(db: &impl ConnectionTrait) -> Result<Vec<Pause>, DbErr> {
    let rows = db.query_all_raw(stmt(&LIST_PAUSES, vec![])).await?;
    rows.into_iter()
        .filter_map(|row| {
            let queue: String = match row.try_get("", "queue") {
                Ok(q) => q,
                Err(e) => return Some(Err(e)),
            };
            let queue = Queue::parse(&queue)?;
            Some(Ok(Pause {
                queue,
                paused_by: match row.try_get("", "paused_by") {
                    Ok(v) => v,
                    Err(e) => return Some(Err(e)),
                },
                paused_at: match row.try_get("", "paused_at") {
                    Ok(v) => v,
                    Err(e) => return Some(Err(e)),
                },
            }))
        })
        .collect()
}

/// Pauses (`true`) or resumes `queue`: records it and the audit row in one transaction,
/// then sets or clears the queue's Redis flag (and on resume wakes the relays and the
/// queue's workers). Returns whether the state changed (pausing a paused queue changes
/// nothing, and is still audited). A failed Redis write is returned as an error after the
/// record committed: the reconciler writes the flag from the record within a round.
pub async fn set_paused(
    db: &DatabaseConnection,
    redis: &mut RedisConn,
    prefix: &str,
    queue: Queue,
    pause: bool,
    actor: Actor<'_>,
) -> anyhow::Result<bool> {
    use anyhow::Context;
    let txn = db.begin().await.context("beginning a transaction")?;
    let changed = if pause {
        txn.execute_raw(stmt(
            &PAUSE,
            vec![queue.as_str().into(), actor.user_id.into()],
        ))
        .await
        .context("recording the pause")?
        .rows_affected()
            == 1
    } else {
        txn.execute_raw(stmt(&RESUME, vec![queue.as_str().into()]))
            .await
            .context("removing the pause")?
            .rows_affected()
            == 1
    };
    audit_log::record(
        &txn,
        actor,
        if pause {
            "queue.paused"
        } else {
            "queue.resumed"
        },
        "queue",
        queue.as_str(),
        serde_json::json!({ "changed": changed }),
    )
    .await
    .context("writing the audit row")?;
    txn.commit().await.context("committing the pause")?;
    if !pause {
        // The relays claim the queue's backlog again at once.
        super::wake::relays(db);
    }
    write_flag(redis, prefix, queue, pause)
        .await
        .context("writing the queue's Redis flag")?;
    tracing::info!(job.queue = queue.as_str(), paused = pause, changed, user.id = %actor.user_id, "queue pause changed");
    Ok(changed)
}

/// Sets or clears `queue`'s Redis flag; clearing wakes its idle workers.
pub async fn write_flag(
    redis: &mut RedisConn,
    prefix: &str,
    queue: Queue,
    pause: bool,
) -> Result<(), redis::RedisError> {
    let key = flag_key(prefix, queue);
    if pause {
        redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .query_async::<()>(redis)
            .await
    } else {
        redis::cmd("DEL").arg(&key).query_async::<()>(redis).await?;
        redis::cmd("PUBLISH")
            .arg(format!("{}:wake", queue_tag(prefix, queue)))
            .arg(1)
            .query_async::<()>(redis)
            .await
    }
}

orderly_db::sql! {
    LIST_PAUSES = "SELECT queue, paused_by, paused_at FROM queue_pauses ORDER BY queue";

    PAUSE = "INSERT INTO queue_pauses (queue, paused_by) VALUES ($1, $2) ON CONFLICT (queue) DO NOTHING";

    RESUME = "DELETE FROM queue_pauses WHERE queue = $1";
}
