//! The outbox: PostgreSQL's record of every job, from enqueue to completion.
//!
//! `enqueue` writes a row in the caller's transaction. The relay `claim_due`s rows (several
//! relays are safe: `FOR UPDATE SKIP LOCKED`) and pushes them to Redis under a lease; the
//! worker records how each attempt ended; `reclaim_expired` hands back rows whose lease ran
//! out without a recorded end (Redis lost them, or a relay died between claim and push).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, Statement, Value};
use uuid::Uuid;

use super::{Envelope, Job};
use crate::entities::outbox::Queue;

fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DatabaseBackend::Postgres, sql, values)
}

/// Records `job` to run at `run_at` (now if `None`) as part of the caller's transaction.
/// Returns `false` when the same work (same dedup key) was already enqueued.
pub async fn enqueue<J: Job>(
    db: &impl ConnectionTrait,
    job: &J,
    run_at: Option<DateTime<Utc>>,
    request_id: Option<&str>,
) -> Result<bool, DbErr> {
    let job = NewJob::of(job, run_at, request_id)?;
    Ok(enqueue_many(db, std::slice::from_ref(&job)).await? == 1)
}

/// A job ready to be written to the outbox, of any type.
#[derive(Debug, Clone)]
pub struct NewJob {
    queue: &'static str,
    job_type: &'static str,
    payload: String,
    task_id: String,
    run_at: Option<DateTime<Utc>>,
    request_id: Option<String>,
}

impl NewJob {
    /// `job`, to run at `run_at` (now if `None`).
    pub fn of<J: Job>(
        job: &J,
        run_at: Option<DateTime<Utc>>,
        request_id: Option<&str>,
    ) -> Result<Self, DbErr> {
        Ok(Self {
            queue: J::QUEUE.as_str(),
            job_type: J::NAME,
            payload: serde_json::to_string(job)
                .map_err(|e| DbErr::Custom(format!("serialising {}: {e}", J::NAME)))?,
            task_id: job.dedup_key(),
            run_at,
            request_id: request_id.map(str::to_owned),
        })
    }
}

/// Records several jobs with one statement, as part of the caller's transaction. Returns
/// how many were new (a job whose dedup key is already there is skipped, as is a repeat
/// within `jobs`).
pub async fn enqueue_many(db: &impl ConnectionTrait, jobs: &[NewJob]) -> Result<u64, DbErr> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let n = jobs.len();
    let (mut ids, mut queues, mut types, mut payloads) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut task_ids, mut run_ats, mut request_ids) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for job in jobs {
        ids.push(Uuid::now_v7());
        queues.push(job.queue.to_owned());
        types.push(job.job_type.to_owned());
        payloads.push(job.payload.clone());
        task_ids.push(job.task_id.clone());
        // Arrays cannot carry NULLs here: '' stands for "now" and for no request id.
        run_ats.push(job.run_at.map(|t| t.to_rfc3339()).unwrap_or_default());
        request_ids.push(job.request_id.clone().unwrap_or_default());
    }
    let result = db
        .execute_raw(stmt(
            "INSERT INTO outbox (id, queue, job_type, payload, task_id, run_at, request_id)
             SELECT id, queue, job_type, payload::jsonb, task_id,
                    COALESCE(NULLIF(run_at, '')::timestamptz, now()), NULLIF(request_id, '')
               FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                    AS j(id, queue, job_type, payload, task_id, run_at, request_id)
             ON CONFLICT (task_id) DO NOTHING",
            vec![
                ids.into(),
                queues.into(),
                types.into(),
                payloads.into(),
                task_ids.into(),
                run_ats.into(),
                request_ids.into(),
            ],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// A claimed row, ready to push.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The queue to push to.
    pub queue: Queue,
    /// The job.
    pub envelope: Envelope,
}

/// Claims up to `limit` due rows for `lease`, marking them `enqueued`.
pub async fn claim_due(
    db: &impl ConnectionTrait,
    limit: u64,
    lease: Duration,
) -> Result<Vec<Claimed>, DbErr> {
    let sql = format!(
        "WITH due AS (
            SELECT id FROM outbox
             WHERE status = 'pending' AND run_at <= now()
             ORDER BY run_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         UPDATE outbox o
            SET status = 'enqueued', enqueued_at = now(),
                lease_until = now() + make_interval(secs => $2)
           FROM due WHERE o.id = due.id
         RETURNING o.id, o.queue, o.job_type, o.payload, o.request_id, o.attempts, {CLAIM_MS} AS claim"
    );
    let rows = db
        .query_all_raw(stmt(
            &sql,
            vec![(limit as i64).into(), lease.as_secs_f64().into()],
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            let queue: String = row.try_get("", "queue")?;
            let attempts: i32 = row.try_get("", "attempts")?;
            Ok(Claimed {
                queue: crate::jobs::Queue::parse(&queue)
                    .ok_or_else(|| DbErr::Custom(format!("unknown queue `{queue}` in outbox")))?,
                envelope: Envelope {
                    outbox_id: row.try_get("", "id")?,
                    job_type: row.try_get("", "job_type")?,
                    payload: row.try_get("", "payload")?,
                    request_id: row.try_get("", "request_id")?,
                    attempt: next_attempt(attempts),
                    claim: row.try_get("", "claim")?,
                },
            })
        })
        .collect()
}

/// A claim's time in Unix milliseconds, as it goes into the task id (`enqueued_at` of the
/// row). Shared by [`claim_due`], [`pushed_before`] and [`reclaim`] so that they agree.
const CLAIM_MS: &str = "(extract(epoch FROM enqueued_at) * 1000)::bigint";

/// The attempt a claim runs, from the attempts already recorded.
fn next_attempt(attempts: i32) -> u32 {
    attempts.max(0) as u32 + 1
}

/// A row that was pushed, as the queue knows it.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The outbox row.
    pub id: Uuid,
    /// When it was claimed (Unix milliseconds).
    pub claim: i64,
    /// The task id it was pushed under.
    pub task_id: String,
}

/// The rows of `queue` pushed more than `grace` ago and still without a recorded end.
pub async fn pushed_before(
    db: &impl ConnectionTrait,
    queue: Queue,
    grace: Duration,
) -> Result<Vec<Pushed>, DbErr> {
    let sql = format!(
        "SELECT id, attempts, {CLAIM_MS} AS claim FROM outbox
          WHERE status = 'enqueued' AND queue = $1 AND enqueued_at < now() - make_interval(secs => $2)"
    );
    let rows = db
        .query_all_raw(stmt(
            &sql,
            vec![queue.as_str().into(), grace.as_secs_f64().into()],
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            let id: Uuid = row.try_get("", "id")?;
            let attempts: i32 = row.try_get("", "attempts")?;
            let claim: i64 = row.try_get("", "claim")?;
            Ok(Pushed {
                id,
                claim,
                task_id: super::envelope::task_id(id, next_attempt(attempts), claim),
            })
        })
        .collect()
}

/// Hands claimed rows back (the push to Redis failed).
pub async fn unclaim(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE outbox SET status = 'pending', lease_until = NULL WHERE id = ANY($1) AND status = 'enqueued'",
        vec![ids.to_vec().into()],
    ))
    .await?;
    Ok(())
}

/// When the next pending row falls due, if any.
pub async fn next_due(db: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT min(run_at) AS next FROM outbox WHERE status = 'pending'",
            vec![],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<Option<DateTime<Utc>>>("", "next")?,
        None => None,
    })
}

/// Records several successes in one statement.
pub async fn complete_many(db: &impl ConnectionTrait, done: &[(Uuid, u32)]) -> Result<(), DbErr> {
    if done.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = done.iter().map(|(id, _)| *id).collect();
    let attempts: Vec<i32> = done.iter().map(|(_, a)| *a as i32).collect();
    db.execute_raw(stmt(
        "UPDATE outbox o
            SET status = 'done', completed_at = now(), lease_until = NULL,
                attempts = GREATEST(o.attempts, d.attempt)
           FROM unnest($1::uuid[], $2::int[]) AS d(id, attempt)
          WHERE o.id = d.id AND o.status <> 'done'",
        vec![ids.into(), attempts.into()],
    ))
    .await?;
    Ok(())
}

/// Records a failed attempt to be retried at `retry_at`.
pub async fn retry_later(
    db: &impl ConnectionTrait,
    id: Uuid,
    attempt: u32,
    retry_at: DateTime<Utc>,
    error: &str,
) -> Result<(), DbErr> {
    // The NOTIFY tells a sleeping relay about the new due time.
    db.execute_raw(stmt(
        "WITH retried AS (
            UPDATE outbox SET status = 'pending', attempts = GREATEST(attempts, $2), run_at = $3,
                   last_error = $4, lease_until = NULL
             WHERE id = $1 AND status NOT IN ('done', 'dead')
            RETURNING 1)
         SELECT pg_notify('orderly_outbox', '') FROM retried",
        vec![
            id.into(),
            (attempt as i32).into(),
            retry_at.into(),
            error.to_owned().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Records a job as dead (permanent failure, or out of attempts), keeping its error.
pub async fn bury(
    db: &impl ConnectionTrait,
    id: Uuid,
    attempt: u32,
    error: &str,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE outbox SET status = 'dead', attempts = GREATEST(attempts, $2), last_error = $3,
                completed_at = now(), lease_until = NULL
          WHERE id = $1 AND status <> 'done'",
        vec![id.into(), (attempt as i32).into(), error.to_owned().into()],
    ))
    .await?;
    Ok(())
}

/// Returns rows whose lease ran out with no recorded end to `pending`, due now.
pub async fn reclaim_expired(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let result = db
        .execute_raw(stmt(
            "UPDATE outbox SET status = 'pending', run_at = now(), lease_until = NULL
              WHERE status = 'enqueued' AND lease_until < now()",
            vec![],
        ))
        .await?;
    wake_relays(db, result.rows_affected()).await
}

/// Returns the given enqueued rows to `pending` at once (Redis no longer holds them).
pub async fn reclaim(db: &impl ConnectionTrait, rows: &[Pushed]) -> Result<u64, DbErr> {
    // Only rows still under the claim that was checked: a row pushed again meanwhile (its
    // old task failed and the relay re-claimed it) keeps its new task.
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let claims: Vec<i64> = rows.iter().map(|r| r.claim).collect();
    let sql = format!(
        "UPDATE outbox o SET status = 'pending', run_at = now(), lease_until = NULL
           FROM unnest($1::uuid[], $2::bigint[]) AS r(id, claim)
          WHERE o.id = r.id AND o.status = 'enqueued' AND {CLAIM_MS} = r.claim"
    );
    let result = db
        .execute_raw(stmt(&sql, vec![ids.into(), claims.into()]))
        .await?;
    wake_relays(db, result.rows_affected()).await
}

/// Wakes every relay when `handed_back` rows became due again.
async fn wake_relays(db: &impl ConnectionTrait, handed_back: u64) -> Result<u64, DbErr> {
    if handed_back > 0 {
        db.execute_unprepared("NOTIFY orderly_outbox").await?;
    }
    Ok(handed_back)
}
