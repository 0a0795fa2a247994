//! `schedule_runs`, as the leader writes it. A tick is fired in one transaction that checks
//! the leader still holds the lease under its fencing token, claims the tick (the primary
//! key `(schedule_name, scheduled_for)` lets it be claimed once, whoever fires it) and
//! writes the tick's job to the outbox: a tick is recorded with its job or not at all, and
//! a stale leader or a second replica firing the same tick changes nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use orderly_db::outbox::OutboxStatus;
use orderly_db::schedule_runs::ScheduleRunStatus;
use orderly_db::sql::stmt;
use orderly_db::{quoted, sql};
use orderly_jobs::outbox::ENDED;
use orderly_jobs::schedules::{Entry, LEASE, TickJob};
use orderly_jobs::{outbox, wake};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

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
        .query_all_raw(stmt(&NOW_AND_LATEST, vec![names.into()]))
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
            &LEADS,
            vec![LEASE.into(), fence.holder.into(), fence.token.into()],
        ))
        .await?
        .is_some();
    if !leads {
        return Ok(Fired::NotLeader);
    }
    let claimed = txn
        .execute_raw(stmt(
            &CLAIM_TICK,
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
            &SETTLE_ENDED,
            [
                ScheduleRunStatus::Done.as_str().into(),
                ScheduleRunStatus::Failed.as_str().into(),
            ],
        ))
        .await?
        .rows_affected();
    let gone = db
        .execute_raw(stmt(
            &SETTLE_GONE,
            [ScheduleRunStatus::Failed.as_str().into()],
        ))
        .await?
        .rows_affected();
    Ok(ended + gone)
}

const RUNNING: &str = quoted!(ScheduleRunStatus::Running);

sql! {
    /// PostgreSQL's clock, and the latest tick of each entry of `$1` (names).
    NOW_AND_LATEST = "SELECT now() AS now, e.name,
                    (SELECT max(scheduled_for) FROM schedule_runs r
                      WHERE r.schedule_name = e.name) AS last
               FROM unnest($1::text[]) AS e(name)";

    /// Whether `$2` holds lease `$1` under token `$3`, held until this transaction ends.
    LEADS = "SELECT 1 AS one FROM leases
              WHERE name = $1 AND holder = $2 AND token = $3 AND lease_until > now()
                FOR SHARE";

    /// Tick `$2` of entry `$1`, fired by `$3` with job `$4`, unless it was fired before.
    CLAIM_TICK = "INSERT INTO schedule_runs (schedule_name, scheduled_for, leader, task_id)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (schedule_name, scheduled_for) DO NOTHING";

    /// Running runs whose job ended are `$1` (done) or `$2` (failed, with the job's error).
    SETTLE_ENDED = "UPDATE schedule_runs r
                SET status = CASE o.status WHEN ", quoted!(OutboxStatus::Done), " THEN $1 ELSE $2 END,
                    finished_at = COALESCE(o.completed_at, now()),
                    error = CASE o.status WHEN ", quoted!(OutboxStatus::Dead), " THEN o.last_error END
               FROM outbox o
              WHERE r.status = ", RUNNING, " AND o.task_id = r.task_id
                AND o.status IN ", ENDED;

    /// Running runs whose job is gone from the outbox are `$1` (failed).
    SETTLE_GONE = "UPDATE schedule_runs r
                SET status = $1, finished_at = now(),
                    error = 'its job is no longer in the outbox (discarded by an operator)'
              WHERE r.status = ", RUNNING, " AND r.task_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.task_id = r.task_id)";
}
