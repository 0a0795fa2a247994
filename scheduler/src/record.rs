//! `schedule_runs`, as the leader writes it. A tick is fired in one transaction that checks
//! the leader still holds the lease under its fencing token, claims the tick (the primary
//! key `(schedule_name, scheduled_for)` lets it be claimed once, whoever fires it) and
//! writes the tick's job to the outbox: a tick is recorded with its job or not at all, and
//! a stale leader or a second replica firing the same tick changes nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use orderly_jobs::schedules::{Entry, LEASE, TickJob};
use orderly_jobs::{outbox, wake};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait, Value};

fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DatabaseBackend::Postgres, sql, values)
}

/// The leader and its fencing token.
#[derive(Debug, Clone, Copy)]
pub struct Fence<'a> {
    /// This replica, as it holds the lease.
    pub holder: &'a str,
    /// The token it was given when it took the lease.
    pub token: i64,
}

/// What became of a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// Claimed and its job written (`false`: the job's key was already in the outbox, as
    /// for a second tick reporting the same day).
    New {
        /// Whether the job is new.
        job_new: bool,
    },
    /// The tick was claimed before (by this leader or another).
    Before,
    /// This replica no longer holds the lease: nothing was written.
    NotLeader,
}

/// PostgreSQL's clock, and the latest tick recorded for each entry.
pub async fn now_and_latest(
    db: &impl ConnectionTrait,
) -> Result<(DateTime<Utc>, HashMap<Entry, DateTime<Utc>>), DbErr> {
    let names: Vec<String> = Entry::ALL.iter().map(|e| e.name().to_owned()).collect();
    // max() per name is one step down the primary key's index.
    let rows = db
        .query_all_raw(stmt(
            "SELECT now() AS now, e.name,
                    (SELECT max(scheduled_for) FROM schedule_runs r
                      WHERE r.schedule_name = e.name) AS last
               FROM unnest($1::text[]) AS e(name)",
            vec![names.into()],
        ))
        .await?;
    let mut now = None;
    let mut latest = HashMap::new();
    for row in rows {
        now = Some(row.try_get::<DateTime<Utc>>("", "now")?);
        let name: String = row.try_get("", "name")?;
        let last: Option<DateTime<Utc>> = row.try_get("", "last")?;
        if let (Some(entry), Some(last)) = (Entry::parse(&name), last) {
            latest.insert(entry, last);
        }
    }
    let now = now.ok_or_else(|| DbErr::RecordNotFound("no clock from PostgreSQL".into()))?;
    Ok((now, latest))
}

/// Fires tick `tick` of `entry` with its job, if `fence` still leads and nobody fired it.
pub async fn fire(
    db: &DatabaseConnection,
    fence: Fence<'_>,
    entry: Entry,
    tick: DateTime<Utc>,
    job: &TickJob,
) -> Result<Fired, DbErr> {
    let txn = db.begin().await?;
    // FOR SHARE: a take-over (an update of this row) waits until this commits, so the
    // check holds until then.
    let leads = txn
        .query_one_raw(stmt(
            "SELECT 1 AS one FROM leases
              WHERE name = $1 AND holder = $2 AND token = $3 AND lease_until > now()
                FOR SHARE",
            vec![LEASE.into(), fence.holder.into(), fence.token.into()],
        ))
        .await?
        .is_some();
    if !leads {
        return Ok(Fired::NotLeader);
    }
    let claimed = txn
        .execute_raw(stmt(
            "INSERT INTO schedule_runs (schedule_name, scheduled_for, leader, task_id)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (schedule_name, scheduled_for) DO NOTHING",
            vec![
                entry.name().into(),
                tick.into(),
                fence.holder.into(),
                job.task_id.clone().into(),
            ],
        ))
        .await?
        .rows_affected()
        == 1;
    if !claimed {
        return Ok(Fired::Before);
    }
    let job_new = outbox::enqueue_many(&txn, std::slice::from_ref(&job.job)).await? == 1;
    wake::commit(db, txn).await?;
    Ok(Fired::New { job_new })
}

/// Gives runs whose job ended the job's outcome: `done`, or `failed` with the job's error
/// (the job died, or it is gone from the outbox: discarded by an operator). Returns how many
/// runs ended.
pub async fn settle(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let ended = db
        .execute_raw(stmt(
            "UPDATE schedule_runs r
                SET status = CASE o.status WHEN 'done' THEN 'done' ELSE 'failed' END,
                    finished_at = COALESCE(o.completed_at, now()),
                    error = CASE o.status WHEN 'dead' THEN o.last_error END
               FROM outbox o
              WHERE r.status = 'running' AND o.task_id = r.task_id
                AND o.status IN ('done', 'dead')",
            vec![],
        ))
        .await?
        .rows_affected();
    let gone = db
        .execute_raw(stmt(
            "UPDATE schedule_runs r
                SET status = 'failed', finished_at = now(),
                    error = 'its job is no longer in the outbox (discarded by an operator)'
              WHERE r.status = 'running' AND r.task_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.task_id = r.task_id)",
            vec![],
        ))
        .await?
        .rows_affected();
    Ok(ended + gone)
}
