//! The outbox: PostgreSQL's record of every job, from enqueue to completion.
//!
//! `enqueue` writes a row in the caller's transaction (`pending`). The relay `claim_due`s
//! rows into each queue's window (`enqueued`: several relays are safe, `FOR UPDATE SKIP
//! LOCKED`) and pushes them to Redis. A worker that fetches one first `start_many`s it
//! (`running`): the fence that makes any stale Redis copy a no-op, and the start of the
//! run's lease, which the worker renews while it runs. The worker records how the run
//! ended; the reconciler hands back rows that Redis lost (`reclaim`) and runs whose worker
//! stopped renewing them (`lose_lapsed`). An end other than success (a retry, a death, a
//! lost worker) also writes that attempt's row of `outbox_attempts`, in the same statement.
//! Every time that decides anything is PostgreSQL's `now()`: one clock, whatever the
//! workers' clocks say.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, Value};
use serde_json::json;
use uuid::Uuid;

use super::{Envelope, Job};
use orderly_db::outbox::{OutboxStatus, Queue};
use orderly_db::sql::const_format::concatcp;
use orderly_db::sql::stmt;
use orderly_db::{quoted, sql};

/// The `INSERT INTO outbox` of the jobs in parameter `$n` (a [`jobs_value`]), as text for a
/// statement's constant: `insert_jobs!("$8")`. With `about`, for a caller that writes jobs
/// in the same statement as the rows they are about, as a CTE `about` whose `id`s were
/// written: a job about a row is written only if that row was; a job about nothing always
/// is. A job whose dedup key is already there is skipped, as is a repeat among the jobs.
#[macro_export]
macro_rules! insert_jobs {
    ($param:literal) => {
        $crate::insert_jobs!(@ $param, "")
    };
    ($param:literal, about) => {
        $crate::insert_jobs!(@ $param, "WHERE j.about IS NULL OR j.about IN (SELECT id FROM about)")
    };
    (@ $param:literal, $only_about:literal) => {
        concat!(
            "INSERT INTO outbox (id, queue, job_type, payload, task_id, run_at, request_id)
             SELECT id, queue, job_type, payload::jsonb, task_id, COALESCE(run_at, now()), request_id
               FROM jsonb_to_recordset(", $param, "::jsonb)
                    AS j(id uuid, queue text, job_type text, payload text, task_id text,
                         run_at timestamptz, request_id text, about uuid)
              ", $only_about, "
             ON CONFLICT (task_id) DO NOTHING"
        )
    };
}

/// A claim's time in Unix milliseconds, as it goes into the task id (`enqueued_at` of the
/// row, qualified by the alias given). Shared by [`claim_due`], [`start_many`],
/// [`pushed_before`], [`lapsed`] and [`reclaim`] so that they agree.
macro_rules! claim_ms {
    () => {
        "(extract(epoch FROM enqueued_at) * 1000)::bigint"
    };
    ($alias:literal) => {
        concat!(
            "(extract(epoch FROM ",
            $alias,
            ".enqueued_at) * 1000)::bigint"
        )
    };
}

/// Outbox rows still alive (pending, queued or running), as a SQL list.
pub const LIVE: &str = concatcp!(
    "(",
    quoted!(OutboxStatus::Pending),
    ", ",
    quoted!(OutboxStatus::Enqueued),
    ", ",
    quoted!(OutboxStatus::Running),
    ")"
);
/// Outbox rows whose job ended, as a SQL list.
pub const ENDED: &str = concatcp!(
    "(",
    quoted!(OutboxStatus::Done),
    ", ",
    quoted!(OutboxStatus::Dead),
    ")"
);
const PENDING: &str = quoted!(OutboxStatus::Pending);
const ENQUEUED: &str = quoted!(OutboxStatus::Enqueued);
const RUNNING: &str = quoted!(OutboxStatus::Running);

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

/// Records the first round of a job family (`make(0)`, `make(1)`, … up to
/// [`MAX_ROUND`](super::MAX_ROUND)) whose key is still free, so that the work is done again
/// even though an earlier round ended. Returns the round, or `None` when every round is
/// taken (an operator's to look at).
pub async fn enqueue_next_round<J: Job>(
    db: &impl ConnectionTrait,
    make: impl Fn(u32) -> J,
    request_id: Option<&str>,
) -> Result<Option<u32>, DbErr> {
    for round in 0..=super::MAX_ROUND {
        if enqueue(db, &make(round), None, request_id).await? {
            return Ok(Some(round));
        }
    }
    Ok(None)
}

/// Makes sure a round of a job family is alive (pending, queued or running): when none is,
/// records the first round whose key is free. Returns the round recorded, or `None` when one
/// was alive already (or every round is taken).
pub async fn ensure_live_round<J: Job>(
    db: &impl ConnectionTrait,
    make: impl Fn(u32) -> J,
    request_id: Option<&str>,
) -> Result<Option<u32>, DbErr> {
    let keys: Vec<String> = (0..=super::MAX_ROUND)
        .map(|round| make(round).dedup_key())
        .collect();
    let live = db
        .query_one_raw(stmt(&COUNT_LIVE, [keys.into()]))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    if live > 0 {
        return Ok(None);
    }
    enqueue_next_round(db, make, request_id).await
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
            payload: serde_json::to_string(job).map_err(|e| DbErr::TryIntoErr {
                from: J::NAME,
                into: "JSON",
                source: std::sync::Arc::new(e),
            })?,
            task_id: job.dedup_key(),
            run_at,
            request_id: request_id.map(str::to_owned),
        })
    }
}

/// Removes the jobs with these dedup keys that have not been handed to a queue yet, in the
/// caller's transaction (work withdrawn with what asked for it). Returns how many went; a
/// job already in a queue stays and finds nothing to do.
pub async fn withdraw(db: &impl ConnectionTrait, task_ids: &[String]) -> Result<u64, DbErr> {
    let done = db
        .execute_raw(stmt(&WITHDRAW, [task_ids.to_vec().into()]))
        .await?;
    Ok(done.rows_affected())
}

/// Records several jobs with one statement, as part of the caller's transaction. Returns
/// how many were new (a job whose dedup key is already there is skipped, as is a repeat
/// within `jobs`).
pub async fn enqueue_many(db: &impl ConnectionTrait, jobs: &[NewJob]) -> Result<u64, DbErr> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let result = db
        .execute_raw(stmt(&ENQUEUE_MANY, [jobs_value(jobs, &[])]))
        .await?;
    Ok(result.rows_affected())
}

/// `jobs` as the value of [`insert_jobs!`]'s parameter. `about[i]`, if given, names the
/// row that job `i` is about (see [`insert_jobs!`]).
pub fn jobs_value(jobs: &[NewJob], about: &[Option<Uuid>]) -> Value {
    let rows: Vec<serde_json::Value> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            json!({
                "id": Uuid::now_v7(),
                "queue": job.queue,
                "job_type": job.job_type,
                "payload": job.payload,
                "task_id": job.task_id,
                "run_at": job.run_at,
                "request_id": job.request_id,
                "about": about.get(i).copied().flatten(),
            })
        })
        .collect();
    serde_json::Value::Array(rows).into()
}

/// A claimed row, ready to push.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The queue to push to.
    pub queue: Queue,
    /// The job.
    pub envelope: Envelope,
}

/// How far ahead of its workers a queue is filled in Redis: `factor` × the concurrency of
/// the queue's live workers, within `min..=max` (`min` also while no worker is live).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Multiple of the live workers' total concurrency.
    pub factor: u32,
    /// The smallest window.
    pub min: u32,
    /// The largest window.
    pub max: u32,
    /// A worker counts as live while its last heartbeat is this recent.
    pub live_within: Duration,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            factor: 2,
            min: 64,
            max: 4096,
            live_within: Duration::from_secs(30),
        }
    }
}

/// Where a queue's last claim stopped, in the order rows are claimed: the next claim of
/// that queue may start its search there instead of walking past the index entries that
/// every claimed row leaves behind until vacuum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// The last claimed row's due time.
    pub run_at: DateTime<Utc>,
    /// And its id.
    pub id: Uuid,
}

/// What one claim took, and when to look again.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// Per queue of `Queue::ALL`, where this claim stopped (`None`: it took nothing there).
    pub cursors: Vec<Option<Cursor>>,
    /// The rows claimed, ready to push.
    pub rows: Vec<Claimed>,
    /// How long until the next pending row left unclaimed falls due: zero when due rows
    /// are (probably) left, because a queue took all the room it had or had none; `None`
    /// when no pending row falls due later.
    pub next_due: Option<Duration>,
}

/// Claims due rows into each queue's window (at most `limit` per queue), marking them
/// `enqueued`; `waiting[i]` is how many tasks already wait in the queue `Queue::ALL[i]`
/// (its Redis list's length, read just before). A queue whose window is full gets nothing,
/// whatever its backlog: PostgreSQL holds the backlog, Redis only what the workers are
/// about to take. The same statement tells when the next unclaimed row falls due, so a
/// relay round is one round trip.
///
/// A queue an operator paused (`queue_pauses`) gets nothing until it is resumed.
///
/// `after[i]`, if given, starts queue `Queue::ALL[i]`'s search after that cursor. A row can
/// turn up behind a cursor (a transaction that committed late, a hand-back), so a caller
/// must also claim without cursors now and then.
pub async fn claim_due(
    db: &impl ConnectionTrait,
    limit: u64,
    window: Window,
    waiting: &[u64],
    after: &[Option<Cursor>],
) -> Result<Claim, DbErr> {
    let queues: Vec<serde_json::Value> = Queue::ALL
        .iter()
        .enumerate()
        .map(|(i, queue)| {
            let after = after.get(i).copied().flatten();
            json!({
                "queue": queue.as_str(),
                "waiting": waiting.get(i).map_or(0, |&n| n as i64),
                "after_run_at": after.map(|c| c.run_at),
                "after_id": after.map(|c| c.id),
            })
        })
        .collect();
    let rows = db
        .query_all_raw(stmt(
            &CLAIM_DUE,
            [
                (limit as i64).into(),
                serde_json::Value::Array(queues).into(),
                window.live_within.as_secs_f64().into(),
                i64::from(window.factor).into(),
                i64::from(window.min).into(),
                i64::from(window.max.max(window.min)).into(),
                OutboxStatus::Enqueued.as_str().into(),
            ],
        ))
        .await?;
    let mut claim = Claim {
        cursors: vec![None; Queue::ALL.len()],
        ..Claim::default()
    };
    for row in rows {
        claim.next_due = row
            .try_get::<Option<f64>>("", "next_due_s")?
            .map(|s| Duration::from_secs_f64(s.max(0.0)));
        // The one row of a claim that took nothing.
        let Some(queue) = row.try_get::<Option<String>>("", "queue")? else {
            continue;
        };
        let attempts: i32 = row.try_get("", "attempts")?;
        let queue = crate::Queue::parse(&queue)
            .ok_or_else(|| DbErr::Type(format!("unknown queue `{queue}` in outbox")))?;
        let at = Cursor {
            run_at: row.try_get("", "run_at")?,
            id: row.try_get("", "id")?,
        };
        if let Some(i) = Queue::ALL.iter().position(|&q| q == queue) {
            claim.cursors[i] = claim.cursors[i].max(Some(at));
        }
        claim.rows.push(Claimed {
            queue,
            envelope: Envelope {
                outbox_id: at.id,
                job_type: row.try_get("", "job_type")?,
                payload: row.try_get("", "payload")?,
                request_id: row.try_get("", "request_id")?,
                attempt: next_attempt(attempts),
                claim: row.try_get("", "claim")?,
            },
        });
    }
    Ok(claim)
}

/// The attempt a claim runs, from the attempts already recorded.
fn next_attempt(attempts: i32) -> u32 {
    attempts.max(0) as u32 + 1
}

/// Starts the runs of `(outbox id, claim)` for `worker`, each under a lease of `lease`:
/// only rows still `enqueued` under that very claim start, so a stale copy of a task (run
/// already, pushed again since, or taken by another worker) starts nothing. Returns the
/// attempt number of each run that started.
pub async fn start_many(
    db: &impl ConnectionTrait,
    runs: &[(Uuid, i64)],
    worker: &str,
    lease: Duration,
) -> Result<HashMap<Uuid, u32>, DbErr> {
    if runs.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = runs.iter().map(|(id, _)| *id).collect();
    let claims: Vec<i64> = runs.iter().map(|(_, c)| *c).collect();
    let rows = db
        .query_all_raw(stmt(
            &START_MANY,
            [
                ids.into(),
                claims.into(),
                lease.as_secs_f64().into(),
                worker.to_owned().into(),
                OutboxStatus::Running.as_str().into(),
            ],
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            let id: Uuid = row.try_get("", "id")?;
            let attempts: i32 = row.try_get("", "attempts")?;
            Ok((id, attempts.max(1) as u32))
        })
        .collect()
}

/// Renews the leases of `worker`'s runs `ids` (those it still holds).
pub async fn renew(
    db: &impl ConnectionTrait,
    worker: &str,
    ids: &[Uuid],
    lease: Duration,
) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    let result = db
        .execute_raw(stmt(
            &RENEW,
            [
                ids.to_vec().into(),
                worker.to_owned().into(),
                lease.as_secs_f64().into(),
            ],
        ))
        .await?;
    Ok(result.rows_affected())
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

/// Up to `limit` rows of `queue` pushed more than `grace` ago and not yet taken by a
/// worker (bounded by the queue's window), oldest first.
pub async fn pushed_before(
    db: &impl ConnectionTrait,
    queue: Queue,
    grace: Duration,
    limit: u64,
) -> Result<Vec<Pushed>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &PUSHED_BEFORE,
            [
                queue.as_str().into(),
                grace.as_secs_f64().into(),
                (limit as i64).into(),
            ],
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
        &UNCLAIM,
        [ids.to_vec().into(), OutboxStatus::Pending.as_str().into()],
    ))
    .await?;
    Ok(())
}

/// Records several successful runs `(id, attempt)` in one statement. A run that is no
/// longer the row's latest (its worker was counted lost and the job handed on) records
/// nothing.
pub async fn complete_many(db: &impl ConnectionTrait, done: &[(Uuid, u32)]) -> Result<(), DbErr> {
    if done.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = done.iter().map(|(id, _)| *id).collect();
    let attempts: Vec<i32> = done.iter().map(|(_, a)| *a as i32).collect();
    db.execute_raw(stmt(
        &COMPLETE_MANY,
        [
            ids.into(),
            attempts.into(),
            OutboxStatus::Done.as_str().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Records that run `attempt` of `id` failed, to be retried `delay` from now (the
/// database's now).
pub async fn retry_later(
    db: &impl ConnectionTrait,
    id: Uuid,
    attempt: u32,
    delay: Duration,
    error: &str,
) -> Result<(), DbErr> {
    // `prev` reads the row as the run left it (its worker), for the attempt's history. The
    // caller wakes the relays afterwards (`wake::relays`) for the new due time.
    db.execute_raw(stmt(
        &RETRY_LATER,
        [
            id.into(),
            (attempt as i32).into(),
            delay.as_secs_f64().into(),
            error.to_owned().into(),
            OutboxStatus::Pending.as_str().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Records run `attempt` of `id` as dead (permanent failure, or out of attempts), keeping
/// its error. Returns whether it was still the row's latest run (and so is now dead).
pub async fn bury(
    db: &impl ConnectionTrait,
    id: Uuid,
    attempt: u32,
    error: &str,
) -> Result<bool, DbErr> {
    let row = db
        .query_one_raw(stmt(
            &BURY,
            [
                id.into(),
                (attempt as i32).into(),
                error.to_owned().into(),
                OutboxStatus::Dead.as_str().into(),
            ],
        ))
        .await?;
    let buried = match row {
        Some(row) => row.try_get::<i64>("", "n")?,
        None => 0,
    };
    Ok(buried == 1)
}

/// A run whose worker stopped renewing its lease: killed, out of memory, partitioned.
#[derive(Debug, Clone)]
pub struct Lapsed {
    /// The outbox row, as an envelope of its last run.
    pub envelope: Envelope,
    /// Runs of this row lost before this one.
    pub worker_losses: u32,
    /// The worker that held it.
    pub worker: Option<String>,
}

/// Locks up to `limit` runs whose lease ran out (call inside a transaction, then
/// [`hand_on_lapsed`] in the same one).
pub async fn lapsed(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<Lapsed>, DbErr> {
    let rows = db
        .query_all_raw(stmt(&LAPSED, [(limit as i64).into()]))
        .await?;
    rows.into_iter()
        .map(|row| {
            let attempts: i32 = row.try_get("", "attempts")?;
            let losses: i32 = row.try_get("", "worker_losses")?;
            Ok(Lapsed {
                envelope: Envelope {
                    outbox_id: row.try_get("", "id")?,
                    job_type: row.try_get("", "job_type")?,
                    payload: row.try_get("", "payload")?,
                    request_id: row.try_get("", "request_id")?,
                    attempt: attempts.max(1) as u32,
                    claim: row.try_get::<Option<i64>>("", "claim")?.unwrap_or_default(),
                },
                worker_losses: losses.max(0) as u32,
                worker: row.try_get("", "locked_by")?,
            })
        })
        .collect()
}

/// What becomes of a lapsed run: retried after `Some(delay)`, or dead (`None`), with `error`.
#[derive(Debug, Clone)]
pub struct HandOn {
    /// The outbox row.
    pub id: Uuid,
    /// When to retry; `None`: the job is dead.
    pub retry_in: Option<Duration>,
    /// What is recorded as its last error.
    pub error: String,
}

/// Records lapsed runs as lost: each counts as an attempt and a worker loss, and is retried
/// or dead as decided.
pub async fn hand_on_lapsed(db: &impl ConnectionTrait, decided: &[HandOn]) -> Result<u64, DbErr> {
    if decided.is_empty() {
        return Ok(0);
    }
    let decided: Vec<serde_json::Value> = decided
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "delay": d.retry_in.map(|r| r.as_secs_f64()),
                "error": d.error,
            })
        })
        .collect();
    let row = db
        .query_one_raw(stmt(
            &HAND_ON_LAPSED,
            [
                serde_json::Value::Array(decided).into(),
                OutboxStatus::Dead.as_str().into(),
                OutboxStatus::Pending.as_str().into(),
            ],
        ))
        .await?;
    let handed = match row {
        Some(row) => row.try_get::<i64>("", "n")?,
        None => 0,
    };
    wake_relays(db, handed.max(0) as u64).await
}

/// Returns the given enqueued rows to `pending` at once (Redis no longer holds them).
pub async fn reclaim(db: &impl ConnectionTrait, rows: &[Pushed]) -> Result<u64, DbErr> {
    // Only rows still under the claim that was checked: a row pushed again meanwhile (its
    // old task failed and the relay re-claimed it) keeps its new task.
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let claims: Vec<i64> = rows.iter().map(|r| r.claim).collect();
    let result = db
        .execute_raw(stmt(
            &RECLAIM,
            [
                ids.into(),
                claims.into(),
                OutboxStatus::Pending.as_str().into(),
            ],
        ))
        .await?;
    wake_relays(db, result.rows_affected()).await
}

/// Wakes every relay when `handed_back` rows became due again.
async fn wake_relays(db: &impl ConnectionTrait, handed_back: u64) -> Result<u64, DbErr> {
    if handed_back > 0 {
        super::wake::relays_now(db).await?;
    }
    Ok(handed_back)
}

sql! {
    /// How many rows of the dedup keys `$1` are alive.
    COUNT_LIVE = "SELECT count(*) AS n FROM outbox WHERE task_id = ANY($1) AND status IN ", LIVE;

    /// Deletes the pending rows of the dedup keys `$1`.
    WITHDRAW = "DELETE FROM outbox WHERE task_id = ANY($1) AND status = ", PENDING;

    /// Writes the jobs of `$1` ([`jobs_value`]).
    ENQUEUE_MANY = insert_jobs!("$1");

    /// Claims due rows into each queue's window: at most `$1` per queue; `$2` the queues
    /// (`queue`, `waiting` in Redis, the cursor `after_run_at`, `after_id` to search after, or
    /// NULL from the start); workers live within `$3` seconds; the window `$4` × their
    /// concurrency within `$5..=$6`; `$7` the status `enqueued`.
    CLAIM_DUE = "WITH live AS (
            SELECT u.queue, sum(u.n)::bigint AS concurrency
              FROM workers w, unnest(w.queues, w.concurrency) AS u(queue, n)
             WHERE w.heartbeat_at > now() - make_interval(secs => $3)
             GROUP BY u.queue),
         room AS MATERIALIZED (
            SELECT q.queue,
                   LEAST(GREATEST(LEAST(GREATEST(COALESCE(l.concurrency, 0) * $4, $5), $6)
                                  - q.waiting, 0), $1) AS room,
                   -- No cursor: from the start, the lowest (run_at, id).
                   COALESCE(q.after_run_at, '-infinity') AS after_run_at,
                   COALESCE(q.after_id, '00000000-0000-0000-0000-000000000000') AS after_id
              FROM jsonb_to_recordset($2::jsonb)
                   AS q(queue text, waiting bigint, after_run_at timestamptz, after_id uuid)
              LEFT JOIN live l ON l.queue = q.queue
             -- A paused queue gets nothing, and its due rows wake no one.
             WHERE NOT EXISTS (SELECT 1 FROM queue_pauses p WHERE p.queue = q.queue)),
         due AS MATERIALIZED (
            SELECT d.id, r.queue, r.room FROM room r CROSS JOIN LATERAL (
                SELECT id FROM outbox
                 WHERE status = ", PENDING, " AND queue = r.queue AND run_at <= now()
                   AND (run_at, id) > (r.after_run_at, r.after_id)
                 ORDER BY run_at, id
                 LIMIT r.room
                 FOR UPDATE SKIP LOCKED) d
             WHERE r.room > 0),
         claimed AS (
            UPDATE outbox o
               SET status = $7, enqueued_at = now(), lease_until = NULL, locked_by = NULL
             -- By primary key: a join with `due` let the planner hash the whole outbox.
             WHERE o.id = ANY (ARRAY(SELECT id FROM due))
            RETURNING o.id, o.queue, o.job_type, o.payload, o.request_id, o.attempts, o.run_at,
                      ", claim_ms!(), " AS claim),
         -- Due rows are probably left when a queue took all its room, or certainly when a
         -- queue with no room has one; otherwise the next row falls due in the future (a
         -- search from now() on, past the claimed rows' dead index entries).
         next AS (
            SELECT CASE
                WHEN EXISTS (SELECT 1 FROM due GROUP BY queue, room HAVING count(*) >= room)
                  OR EXISTS (SELECT 1 FROM room r WHERE r.room = 0 AND EXISTS (
                        SELECT 1 FROM outbox
                         WHERE status = ", PENDING, " AND queue = r.queue AND run_at <= now()
                           AND (run_at, id) > (r.after_run_at, r.after_id)))
                THEN 0
                ELSE (SELECT extract(epoch FROM min(f.run_at) - now())
                        FROM room q CROSS JOIN LATERAL (
                            SELECT run_at FROM outbox
                             WHERE status = ", PENDING, " AND queue = q.queue AND run_at > now()
                             ORDER BY run_at LIMIT 1) f)
                END::float8 AS next_due_s)
         SELECT next.next_due_s, claimed.* FROM next LEFT JOIN claimed ON true";

    /// Starts the runs of `$1` (ids) under the claims `$2` for worker `$4`, leased for `$3`
    /// seconds; `$5` the status `running`.
    START_MANY = "UPDATE outbox o
            SET status = $5, started_at = now(), attempts = o.attempts + 1,
                lease_until = now() + make_interval(secs => $3), locked_by = $4
           FROM unnest($1::uuid[], $2::bigint[]) AS s(id, claim)
          WHERE o.id = s.id AND o.status = ", ENQUEUED, " AND ", claim_ms!("o"), " = s.claim
         RETURNING o.id, o.attempts";

    /// Renews for `$3` seconds the leases of worker `$2`'s runs `$1`.
    RENEW = "UPDATE outbox SET lease_until = now() + make_interval(secs => $3)
              WHERE id = ANY($1) AND status = ", RUNNING, " AND locked_by = $2";

    /// Up to `$3` rows of queue `$1` pushed more than `$2` seconds ago.
    PUSHED_BEFORE = "SELECT id, attempts, ", claim_ms!(), " AS claim FROM outbox
          WHERE status = ", ENQUEUED, " AND queue = $1
            AND enqueued_at < now() - make_interval(secs => $2)
          ORDER BY enqueued_at
          LIMIT $3";

    /// Hands the claimed rows `$1` back; `$2` the status `pending`.
    UNCLAIM = "UPDATE outbox SET status = $2, lease_until = NULL
                WHERE id = ANY($1) AND status = ", ENQUEUED;

    /// Records the runs `$1` (ids), `$2` (attempts) as done; `$3` the status `done`.
    COMPLETE_MANY = "UPDATE outbox o
            SET status = $3, completed_at = now(), lease_until = NULL
           FROM unnest($1::uuid[], $2::int[]) AS d(id, attempt)
          WHERE o.id = d.id AND o.attempts = d.attempt AND o.status NOT IN ", ENDED;

    /// Run `$2` of `$1` failed with `$4`, to be retried in `$3` seconds; `$5` the status
    /// `pending`. `prev` reads the row as the run left it (its worker), for the attempt's
    /// history.
    RETRY_LATER = "WITH prev AS (SELECT id, started_at, locked_by FROM outbox WHERE id = $1),
         retried AS (
            UPDATE outbox SET status = $5, run_at = now() + make_interval(secs => $3),
                   last_error = $4, lease_until = NULL, locked_by = NULL
             WHERE id = $1 AND attempts = $2 AND status NOT IN ", ENDED, "
            RETURNING id, attempts),
         logged AS (
            INSERT INTO outbox_attempts (outbox_id, attempt, started_at, outcome, error, worker)
            SELECT r.id, r.attempts, p.started_at, 'retry', $4, p.locked_by
              FROM retried r JOIN prev p ON p.id = r.id
            ON CONFLICT DO NOTHING
            RETURNING 1)
         SELECT count(*) FROM retried";

    /// Run `$2` of `$1` is dead with the error `$3`; `$4` the status `dead`.
    BURY = "WITH prev AS (SELECT id, started_at, locked_by FROM outbox WHERE id = $1),
             buried AS (
                UPDATE outbox SET status = $4, last_error = $3, completed_at = now(),
                       lease_until = NULL
                 WHERE id = $1 AND attempts = $2 AND status NOT IN ", ENDED, "
                RETURNING id, attempts),
             logged AS (
                INSERT INTO outbox_attempts (outbox_id, attempt, started_at, outcome, error, worker)
                SELECT b.id, b.attempts, p.started_at, 'dead', $3, p.locked_by
                  FROM buried b JOIN prev p ON p.id = b.id
                ON CONFLICT DO NOTHING
                RETURNING 1)
             SELECT count(*) AS n FROM buried";

    /// Locks up to `$1` runs whose lease ran out.
    LAPSED = "SELECT id, job_type, payload, request_id, attempts, worker_losses, locked_by,
                    ", claim_ms!(), " AS claim
               FROM outbox
              WHERE status = ", RUNNING, " AND lease_until < now()
              ORDER BY lease_until
              LIMIT $1
                FOR UPDATE SKIP LOCKED";

    /// Records the lapsed runs of `$1` (`id`, `delay` in seconds or NULL for dead, `error`)
    /// as lost; `$2` the status `dead`, `$3` the status `pending`.
    HAND_ON_LAPSED = "WITH prev AS (
                SELECT o.id, o.started_at, o.locked_by
                  FROM outbox o, jsonb_to_recordset($1::jsonb) AS d(id uuid)
                 WHERE o.id = d.id),
             handed AS (
                UPDATE outbox o
                   SET status = CASE WHEN d.delay IS NULL THEN $2 ELSE $3 END,
                       run_at = CASE WHEN d.delay IS NULL THEN o.run_at
                                     ELSE now() + make_interval(secs => d.delay) END,
                       completed_at = CASE WHEN d.delay IS NULL THEN now() ELSE NULL END,
                       worker_losses = o.worker_losses + 1,
                       last_error = d.error, lease_until = NULL, locked_by = NULL
                  FROM jsonb_to_recordset($1::jsonb) AS d(id uuid, delay float8, error text)
                 WHERE o.id = d.id AND o.status = ", RUNNING, " AND o.lease_until < now()
                RETURNING o.id, o.attempts, o.last_error),
             logged AS (
                INSERT INTO outbox_attempts (outbox_id, attempt, started_at, outcome, error, worker)
                SELECT h.id, h.attempts, p.started_at, 'lost', h.last_error, p.locked_by
                  FROM handed h JOIN prev p ON p.id = h.id
                ON CONFLICT DO NOTHING
                RETURNING 1)
             SELECT count(*) AS n FROM handed";

    /// Returns the rows `$1` still under the claims `$2` to `$3`, the status `pending`.
    RECLAIM = "UPDATE outbox o SET status = $3, run_at = now(), lease_until = NULL
           FROM unnest($1::uuid[], $2::bigint[]) AS r(id, claim)
          WHERE o.id = r.id AND o.status = ", ENQUEUED, " AND ", claim_ms!("o"), " = r.claim";
}
