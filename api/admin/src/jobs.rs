//! What operators see of the outbox and do to it: per-queue counts, the jobs list, and
//! retry and discard of single jobs or of a queue's jobs in one state, each atomic, audited
//! in the same transaction, and safe against a worker ending the job at the same moment.
//!
//! A job's **state**, as operators see it, from its outbox row (disjoint, each read by a
//! partial index):
//!
//! | state | row |
//! | --- | --- |
//! | `pending` | due (`status = 'pending'`, `run_at <= now()`) and not yet in Redis, or in Redis waiting for a worker (`enqueued`) |
//! | `scheduled` | `pending` with `run_at` in the future and no error yet |
//! | `failed` | `pending` with `run_at` in the future after an error: waiting for its retry |
//! | `running` | taken by a worker (`locked_by`) under a lease |
//! | `dead` | given up, with its last error |
//! | `done` | finished |
//!
//! Retry and discard lock the row (`FOR UPDATE`) and write it only in a state that allows
//! it, so a worker's concurrent start or end either happens before (and the action sees
//! its result) or waits for the action and then finds the row changed: the outbox's fence
//! (`start_many` needs `enqueued` under the same claim; every end needs the same attempt
//! and a row not yet `done` or `dead`) turns the late write into a no-op. A retry keeps
//! the attempt count: attempt numbers are that fence's token, so they never repeat.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{
    Alias, Condition, Expr, LockBehavior, LockType, Order, Query, SelectStatement,
};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use orderly_db::audit_log::{self, Actor};
use orderly_db::notifications::NotificationStatus;
use orderly_db::outbox::{self as outbox_table, OutboxStatus};
use orderly_db::sql::const_format::concatcp;
use orderly_db::sql::stmt;
use orderly_db::{quoted, sql};
use orderly_jobs::{Job, Queue, SendEmail, SendSms, wake};

const PENDING: &str = quoted!(OutboxStatus::Pending);
const ENQUEUED: &str = quoted!(OutboxStatus::Enqueued);
const RUNNING: &str = quoted!(OutboxStatus::Running);
const DEAD: &str = quoted!(OutboxStatus::Dead);
const DONE: &str = quoted!(OutboxStatus::Done);

/// A job's state as operators see it (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Due, not yet taken by a worker (in PostgreSQL or waiting in Redis).
    Pending,
    /// Due later, not failed yet.
    Scheduled,
    /// Waiting for a retry after an error.
    Failed,
    /// Taken by a worker under a lease.
    Running,
    /// Given up.
    Dead,
    /// Finished.
    Done,
}

impl JobState {
    /// Every state.
    pub const ALL: [JobState; 6] = [
        Self::Pending,
        Self::Scheduled,
        Self::Failed,
        Self::Running,
        Self::Dead,
        Self::Done,
    ];

    /// The name in JSON and queries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Scheduled => "scheduled",
            Self::Failed => "failed",
            Self::Running => "running",
            Self::Dead => "dead",
            Self::Done => "done",
        }
    }

    /// Parses a state name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The rows in this state, as SQL over the outbox aliased `o`.
    fn condition(self) -> &'static str {
        match self {
            Self::Pending => concatcp!(
                "((o.status = ",
                PENDING,
                " AND o.run_at <= now()) OR o.status = ",
                ENQUEUED,
                ")"
            ),
            Self::Scheduled => concatcp!(
                "(o.status = ",
                PENDING,
                " AND o.run_at > now() AND o.last_error IS NULL)"
            ),
            Self::Failed => concatcp!(
                "(o.status = ",
                PENDING,
                " AND o.run_at > now() AND o.last_error IS NOT NULL)"
            ),
            Self::Running => concatcp!("(o.status = ", RUNNING, ")"),
            Self::Dead => concatcp!("(o.status = ", DEAD, ")"),
            Self::Done => concatcp!("(o.status = ", DONE, ")"),
        }
    }

    /// The state of a row.
    fn of(status: &str, run_at: DateTime<Utc>, now: DateTime<Utc>, failed: bool) -> Self {
        match status {
            "pending" if run_at > now && failed => Self::Failed,
            "pending" if run_at > now => Self::Scheduled,
            "running" => Self::Running,
            "dead" => Self::Dead,
            "done" => Self::Done,
            _ => Self::Pending,
        }
    }
}

/// One queue's counts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// The queue.
    pub queue: Queue,
    /// Due and not yet taken by a worker.
    pub pending: u64,
    /// Of `pending`, how many are still in PostgreSQL (not yet pushed to Redis).
    pub backlog: u64,
    /// Due later.
    pub scheduled: u64,
    /// Running under a lease.
    pub running: u64,
    /// Waiting for a retry after an error.
    pub failed: u64,
    /// Given up.
    pub dead: u64,
    /// Finished in the last hour.
    pub done_last_hour: u64,
    /// Seconds since the oldest pending job fell due; 0 when none is pending.
    pub oldest_pending_age_s: f64,
    /// Whether an operator paused the queue.
    pub paused: bool,
    /// Since when, if paused.
    #[schema(required = true)]
    pub paused_at: Option<DateTime<Utc>>,
}

/// Counts of every queue, each read by a partial index (never a walk of the outbox).
pub async fn queue_stats(db: &impl ConnectionTrait) -> Result<Vec<QueueStats>, DbErr> {
    let queues: Vec<String> = Queue::ALL.iter().map(|q| q.as_str().to_owned()).collect();
    let rows = db
        .query_all_raw(stmt(&QUEUE_STATS, [queues.into()]))
        .await?;
    rows.into_iter()
        .map(|row| {
            let name: String = row.try_get("", "queue")?;
            let queue = Queue::parse(&name)
                .ok_or_else(|| DbErr::Type(format!("unknown queue `{name}`")))?;
            let n = |col: &str| -> Result<u64, DbErr> {
                Ok(row.try_get::<i64>("", col)?.max(0) as u64)
            };
            let (due, in_redis, later, failed) =
                (n("due")?, n("in_redis")?, n("later")?, n("failed")?);
            let paused_at: Option<DateTime<Utc>> = row.try_get("", "paused_at")?;
            Ok(QueueStats {
                queue,
                pending: due + in_redis,
                backlog: due,
                scheduled: later.saturating_sub(failed),
                running: n("running")?,
                failed,
                dead: n("dead")?,
                done_last_hour: n("done_last_hour")?,
                oldest_pending_age_s: row
                    .try_get::<Option<f64>>("", "oldest_s")?
                    .unwrap_or(0.0)
                    .max(0.0),
                paused: paused_at.is_some(),
                paused_at,
            })
        })
        .collect()
}

/// The outbox's backlog: due rows the relays have not yet pushed to Redis.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Backlog {
    /// Due rows still only in PostgreSQL.
    pub backlog: u64,
    /// Seconds since the oldest of them fell due; 0 when there is none.
    pub oldest_age_s: f64,
}

/// The backlog over every queue, from the per-queue counts and one indexed read.
pub async fn backlog(db: &impl ConnectionTrait, stats: &[QueueStats]) -> Result<Backlog, DbErr> {
    let queues: Vec<String> = Queue::ALL.iter().map(|q| q.as_str().to_owned()).collect();
    let row = db.query_one_raw(stmt(&OLDEST_DUE, [queues.into()])).await?;
    let oldest = match row {
        Some(row) => row.try_get::<Option<f64>>("", "oldest_s")?,
        None => None,
    };
    Ok(Backlog {
        backlog: stats.iter().map(|s| s.backlog).sum(),
        oldest_age_s: oldest.unwrap_or(0.0).max(0.0),
    })
}

/// A live worker process.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveWorker {
    /// Its name (`host-pid-ulid`), as in a job's `locked_by`.
    pub name: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i32,
    /// The queues it drains, with their concurrency.
    pub queues: Vec<WorkerQueue>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (PostgreSQL's clock).
    pub last_heartbeat: DateTime<Utc>,
    /// Seconds since then.
    pub heartbeat_age_s: f64,
}

/// One queue a worker drains.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkerQueue {
    /// The queue.
    #[schema(value_type = Queue)]
    pub queue: String,
    /// Jobs it runs at once.
    pub concurrency: i32,
}

/// Worker processes heart-beaten within `live_within`, by name.
pub async fn live_workers(
    db: &impl ConnectionTrait,
    live_within: std::time::Duration,
) -> Result<Vec<LiveWorker>, DbErr> {
    let rows = db
        .query_all_raw(stmt(&LIVE_WORKERS, [live_within.as_secs_f64().into()]))
        .await?;
    rows.into_iter()
        .map(|row| {
            let queues: Vec<String> = row.try_get("", "queues")?;
            let concurrency: Vec<i32> = row.try_get("", "concurrency")?;
            Ok(LiveWorker {
                name: row.try_get("", "name")?,
                host: row.try_get("", "host")?,
                pid: row.try_get("", "pid")?,
                queues: queues
                    .into_iter()
                    .zip(concurrency)
                    .map(|(queue, concurrency)| WorkerQueue { queue, concurrency })
                    .collect(),
                started_at: row.try_get("", "started_at")?,
                last_heartbeat: row.try_get("", "heartbeat_at")?,
                heartbeat_age_s: row.try_get::<f64>("", "age_s")?.max(0.0),
            })
        })
        .collect()
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this queue.
    pub queue: Option<Queue>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this job type.
    pub job_type: Option<String>,
    /// Only jobs about this booking (directly, or about one of its messages).
    pub booking_id: Option<Uuid>,
}

/// The jobs of a booking (`$1`, as text): its own first (each arm by a partial expression
/// index), then by primary key: a plain OR let the planner walk the whole outbox newest first.
const BOOKING_JOBS: &str = "o.id = ANY (ARRAY(
    SELECT id FROM outbox
     WHERE payload ? 'booking_id' AND payload ->> 'booking_id' = $1
    UNION ALL
    SELECT id FROM outbox
     WHERE payload ? 'notification_id' AND payload ->> 'notification_id' = ANY (ARRAY(
           SELECT id::text FROM notifications WHERE booking_id = CAST($1 AS uuid)))))";

/// The outbox's alias in the statements built from a [`JobFilter`] (and in [`JOB_COLUMNS`]).
fn o() -> Alias {
    Alias::new("o")
}

impl JobFilter {
    /// The filter as a condition over the outbox aliased `o`.
    fn condition(&self) -> Condition {
        use sea_orm::sea_query::ExprTrait as _;
        let mut condition = Condition::all();
        if let Some(queue) = self.queue {
            condition =
                condition.add(Expr::col((o(), outbox_table::Column::Queue)).eq(queue.as_str()));
        }
        if let Some(state) = self.state {
            condition = condition.add(Expr::cust(state.condition()));
        }
        if let Some(job_type) = &self.job_type {
            condition = condition
                .add(Expr::col((o(), outbox_table::Column::JobType)).eq(job_type.as_str()));
        }
        if let Some(booking) = self.booking_id {
            condition = condition.add(Expr::cust_with_values(BOOKING_JOBS, [booking.to_string()]));
        }
        condition
    }

    /// The outbox aliased `o`, filtered, selecting nothing yet.
    fn select(&self) -> SelectStatement {
        Query::select()
            .from_as(outbox_table::Entity, o())
            .cond_where(self.condition())
            .to_owned()
    }
}

/// A statement built with sea-query, for PostgreSQL.
fn built(query: &SelectStatement) -> Statement {
    DatabaseBackend::Postgres.build(query)
}

/// A job as operators see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    /// The outbox row's id (UUIDv7: newer is greater).
    pub id: Uuid,
    /// The queue.
    pub queue: Queue,
    /// The job type (`send_email`).
    #[serde(rename = "type")]
    pub job_type: String,
    /// Its state (see `GET /api/v1/admin/jobs`).
    pub state: JobState,
    /// The outbox row's own status: `pending`, `enqueued` (in Redis), `running`, `done`, `dead`.
    #[schema(value_type = orderly_db::outbox::OutboxStatus)]
    pub status: String,
    /// Attempts started so far (a retry by an operator keeps counting).
    pub attempts: i32,
    /// Of those, attempts whose worker was lost (killed, out of memory).
    pub worker_losses: i32,
    /// The error of the last failed attempt.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    /// When its next retry falls due, for a job waiting for one.
    #[schema(required = true)]
    pub next_retry_at: Option<DateTime<Utc>>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Its row's last change.
    pub updated_at: DateTime<Utc>,
    /// When a relay last pushed it to Redis.
    #[schema(required = true)]
    pub enqueued_at: Option<DateTime<Utc>>,
    /// When its current or last attempt started.
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended (`done` or `dead`).
    #[schema(required = true)]
    pub completed_at: Option<DateTime<Utc>>,
    /// The worker process running it.
    #[schema(required = true)]
    pub locked_by: Option<String>,
    /// Until when its run's lease holds (the worker renews it while it runs).
    #[schema(required = true)]
    pub lease_until: Option<DateTime<Utc>>,
    /// Seconds since the running worker's last heartbeat (`null` when not running, or when
    /// the worker is no longer registered).
    #[schema(required = true)]
    pub heartbeat_age_s: Option<f64>,
    /// The `X-Request-Id` of the request that caused it.
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// The booking it is about (directly, or through its message).
    #[schema(required = true)]
    pub booking_id: Option<Uuid>,
    /// Its payload (IDs only).
    pub payload: serde_json::Value,
    /// Its failed attempts, oldest first: each retry, death or lost worker with its error.
    /// A successful attempt is the job itself (`started_at`, `completed_at`, `locked_by`).
    pub failed_attempts: Vec<AttemptView>,
}

/// One failed attempt of a job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1 for the first.
    pub attempt: i32,
    /// When it started.
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    /// When its end was recorded.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// What went wrong.
    pub error: String,
    /// The worker process that ran it.
    #[schema(required = true)]
    pub worker: Option<String>,
}

/// How a failed attempt ended: `outbox_attempts.outcome`, whose `CHECK` allows these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Failed; retried later.
    Retry,
    /// Failed; given up.
    Dead,
    /// Its worker stopped renewing the lease (killed, out of memory).
    Lost,
}

impl AttemptOutcome {
    /// The outcome stored as `text`.
    fn parse(text: &str) -> Result<Self, DbErr> {
        match text {
            "retry" => Ok(Self::Retry),
            "dead" => Ok(Self::Dead),
            "lost" => Ok(Self::Lost),
            other => Err(DbErr::Type(format!("unknown attempt outcome `{other}`"))),
        }
    }
}

/// Fills in each job's failed attempts with one read.
async fn attach_history(db: &impl ConnectionTrait, jobs: &mut [JobView]) -> Result<(), DbErr> {
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let rows = db.query_all_raw(stmt(&HISTORY, [ids.into()])).await?;
    for row in rows {
        let id: Uuid = row.try_get("", "outbox_id")?;
        let attempt = AttemptView {
            attempt: row.try_get("", "attempt")?,
            started_at: row.try_get("", "started_at")?,
            finished_at: row.try_get("", "finished_at")?,
            outcome: AttemptOutcome::parse(&row.try_get::<String>("", "outcome")?)?,
            error: row.try_get("", "error")?,
            worker: row.try_get("", "worker")?,
        };
        if let Some(job) = jobs.iter_mut().find(|j| j.id == id) {
            job.failed_attempts.push(attempt);
        }
    }
    Ok(())
}

const JOB_COLUMNS: &str = concatcp!("o.id, o.queue, o.job_type, o.status, o.attempts, o.worker_losses,
    o.last_error, o.run_at, o.created_at, o.updated_at, o.enqueued_at, o.started_at,
    o.completed_at, o.locked_by, o.lease_until, o.request_id, o.payload, now() AS now,
    CASE WHEN o.status = ", RUNNING, " THEN
        (SELECT extract(epoch FROM now() - w.heartbeat_at)::float8 FROM workers w WHERE w.name = o.locked_by)
    END AS heartbeat_age_s,
    COALESCE(
        CASE WHEN o.payload ->> 'booking_id' ~* '^[0-9a-f-]{36}$' THEN (o.payload ->> 'booking_id')::uuid END,
        CASE WHEN o.payload ->> 'notification_id' ~* '^[0-9a-f-]{36}$' THEN
            (SELECT n.booking_id FROM notifications n WHERE n.id = (o.payload ->> 'notification_id')::uuid)
        END) AS booking_id");

sql! {
    /// Counts of the queues in `$1`, in that order, each by a partial index.
    QUEUE_STATS = "SELECT q.queue,
                (SELECT count(*) FROM outbox WHERE status = ", PENDING, " AND queue = q.queue AND run_at <= now()) AS due,
                (SELECT count(*) FROM outbox WHERE status = ", ENQUEUED, " AND queue = q.queue) AS in_redis,
                (SELECT count(*) FROM outbox WHERE status = ", PENDING, " AND queue = q.queue AND run_at > now()) AS later,
                (SELECT count(*) FROM outbox WHERE status = ", PENDING, " AND last_error IS NOT NULL
                                                AND queue = q.queue AND run_at > now()) AS failed,
                (SELECT count(*) FROM outbox WHERE status = ", RUNNING, " AND queue = q.queue) AS running,
                (SELECT count(*) FROM outbox WHERE status = ", DEAD, " AND queue = q.queue) AS dead,
                (SELECT count(*) FROM outbox WHERE status = ", DONE, " AND queue = q.queue
                                                AND completed_at > now() - interval '1 hour') AS done_last_hour,
                extract(epoch FROM now() - LEAST(
                    (SELECT min(run_at) FROM outbox WHERE status = ", PENDING, " AND queue = q.queue AND run_at <= now()),
                    (SELECT min(run_at) FROM outbox WHERE status = ", ENQUEUED, " AND queue = q.queue)))::float8 AS oldest_s,
                p.paused_at
               FROM unnest($1::text[]) WITH ORDINALITY AS q(queue, n)
               LEFT JOIN queue_pauses p ON p.queue = q.queue
              ORDER BY q.n";
    /// Seconds since the oldest due row of the queues in `$1` not yet in Redis fell due.
    OLDEST_DUE = "SELECT extract(epoch FROM now() - min(f.run_at))::float8 AS oldest_s
               FROM unnest($1::text[]) AS q(queue) CROSS JOIN LATERAL (
                    SELECT run_at FROM outbox
                     WHERE status = ", PENDING, " AND queue = q.queue AND run_at <= now()
                     ORDER BY run_at LIMIT 1) f";
    /// Workers that heartbeat within the last `$1` seconds, by name.
    LIVE_WORKERS = "SELECT name, host, pid, queues, concurrency, started_at, heartbeat_at,
                    extract(epoch FROM now() - heartbeat_at)::float8 AS age_s
               FROM workers WHERE heartbeat_at > now() - make_interval(secs => $1)
              ORDER BY name";
    /// The failed attempts of the jobs `$1`.
    HISTORY = "SELECT outbox_id, attempt, started_at, finished_at, outcome, error, worker
               FROM outbox_attempts WHERE outbox_id = ANY($1)
              ORDER BY outbox_id, attempt";
    /// Job `$1` of queue `$2`.
    FIND = "SELECT ", JOB_COLUMNS, " FROM outbox o WHERE o.id = $1 AND o.queue = $2";
    /// Job `$1`, locked.
    LOCK = "SELECT ", JOB_COLUMNS, " FROM outbox o WHERE o.id = $1 FOR UPDATE OF o";
    /// Puts the dead or failed rows of `$1` back to `$3` (pending), due now, and their failed message jobs' (types `$2`) messages to `$4` (pending).
    REQUEUE = "WITH retried AS (
                UPDATE outbox o
                   SET status = $3, run_at = now(), completed_at = NULL,
                       lease_until = NULL, locked_by = NULL
                 WHERE o.id = ANY($1)
                   AND (o.status = ", DEAD, "
                        OR (o.status = ", PENDING, " AND o.last_error IS NOT NULL AND o.run_at > now()))
                RETURNING o.id, o.job_type, o.payload),
             reopened AS (
                UPDATE notifications n SET status = $4, last_error = NULL, sending_until = NULL
                  FROM retried r
                 WHERE r.job_type = ANY($2) AND n.status = ", quoted!(NotificationStatus::Failed), "
                   AND r.payload ->> 'notification_id' ~* '^[0-9a-f-]{36}$'
                   AND n.id = (r.payload ->> 'notification_id')::uuid
                RETURNING 1)
             SELECT id FROM retried";
    /// Deletes the rows of `$1` not running or done; their message jobs' (types `$2`) unsent messages become `$3` (failed).
    DROP_ROWS = "WITH gone AS (
                DELETE FROM outbox o
                 WHERE o.id = ANY($1) AND o.status IN (", PENDING, ", ", ENQUEUED, ", ", DEAD, ")
                RETURNING o.id, o.job_type, o.payload),
             given_up AS (
                UPDATE notifications n
                   SET status = $3, last_error = 'discarded by an operator'
                  FROM gone g
                 WHERE g.job_type = ANY($2) AND n.status = ", quoted!(NotificationStatus::Pending), "
                   AND g.payload ->> 'notification_id' ~* '^[0-9a-f-]{36}$'
                   AND n.id = (g.payload ->> 'notification_id')::uuid
                RETURNING 1)
             SELECT id FROM gone";
}

fn job_view(row: &sea_orm::QueryResult) -> Result<JobView, DbErr> {
    let name: String = row.try_get("", "queue")?;
    let queue =
        Queue::parse(&name).ok_or_else(|| DbErr::Type(format!("unknown queue `{name}`")))?;
    let status: String = row.try_get("", "status")?;
    let run_at: DateTime<Utc> = row.try_get("", "run_at")?;
    let now: DateTime<Utc> = row.try_get("", "now")?;
    let last_error: Option<String> = row.try_get("", "last_error")?;
    let state = JobState::of(&status, run_at, now, last_error.is_some());
    let waiting_retry = status == "pending" && last_error.is_some();
    Ok(JobView {
        id: row.try_get("", "id")?,
        queue,
        job_type: row.try_get("", "job_type")?,
        state,
        attempts: row.try_get("", "attempts")?,
        worker_losses: row.try_get("", "worker_losses")?,
        last_error,
        run_at,
        next_retry_at: waiting_retry.then_some(run_at),
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
        enqueued_at: row.try_get("", "enqueued_at")?,
        started_at: row.try_get("", "started_at")?,
        completed_at: row.try_get("", "completed_at")?,
        locked_by: row.try_get("", "locked_by")?,
        lease_until: row.try_get("", "lease_until")?,
        heartbeat_age_s: row.try_get("", "heartbeat_age_s")?,
        request_id: row.try_get("", "request_id")?,
        booking_id: row.try_get("", "booking_id")?,
        payload: row.try_get("", "payload")?,
        failed_attempts: Vec::new(),
        status,
    })
}

/// The most matching jobs a list counts and pages through: past it, narrow the filter.
pub const LIST_CAP: u64 = 10_000;

/// Jobs matching `filter`, newest first: `(count, page)`; the count stops at [`LIST_CAP`].
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &JobFilter,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<JobView>), DbErr> {
    let counted = Query::select()
        .expr_as(Expr::cust("count(*)"), Alias::new("n"))
        .from_subquery(
            filter
                .select()
                .expr(Expr::cust("1"))
                .limit(LIST_CAP)
                .to_owned(),
            Alias::new("c"),
        )
        .to_owned();
    let count = db
        .query_one_raw(built(&counted))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0)
        .max(0) as u64;
    let limit = limit.min(LIST_CAP.saturating_sub(offset));
    if limit == 0 {
        return Ok((count, Vec::new()));
    }
    let page = filter
        .select()
        .expr(Expr::cust(JOB_COLUMNS))
        .order_by((o(), outbox_table::Column::Id), Order::Desc)
        .limit(limit)
        .offset(offset)
        .to_owned();
    let rows = db.query_all_raw(built(&page)).await?;
    let mut jobs: Vec<JobView> = rows.iter().map(job_view).collect::<Result<_, _>>()?;
    attach_history(db, &mut jobs).await?;
    Ok((count, jobs))
}

/// Job `id` of `queue` with its failed attempts (one job's page), or `None`.
pub async fn find(
    db: &impl ConnectionTrait,
    queue: Queue,
    id: Uuid,
) -> Result<Option<JobView>, DbErr> {
    let row = db
        .query_one_raw(stmt(&FIND, [id.into(), queue.as_str().into()]))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut job = job_view(&row)?;
    attach_history(db, std::slice::from_mut(&mut job)).await?;
    Ok(Some(job))
}

/// Why an operator's action on one job was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No such job in that queue.
    #[error("no such job in the {0} queue")]
    NotFound(&'static str),
    /// The job's state does not allow it (a running job cannot be discarded).
    #[error("the job is {}: {why}", state.as_str())]
    WrongState {
        /// Its state.
        state: JobState,
        /// What the action needs.
        why: &'static str,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Locks job `id` of `queue` for an action: its state, or why there is none.
async fn lock(db: &impl ConnectionTrait, queue: Queue, id: Uuid) -> Result<JobView, ActionError> {
    let row = db
        .query_one_raw(stmt(&LOCK, [id.into()]))
        .await?
        .ok_or(ActionError::NotFound(queue.as_str()))?;
    let job = job_view(&row)?;
    if job.queue != queue {
        return Err(ActionError::NotFound(queue.as_str()));
    }
    Ok(job)
}

/// The message jobs, whose death makes their message `failed` (and whose retry reopens it).
fn message_types() -> Vec<String> {
    vec![SendEmail::NAME.to_owned(), SendSms::NAME.to_owned()]
}

/// Retry: the dead or failed job `id` of `queue` runs again now. Its attempts are kept (a
/// transient failure past its type's limit makes it dead again); a dead message job's
/// message goes back from `failed` to `pending`. Audited in the same transaction.
pub async fn retry(
    db: &DatabaseConnection,
    queue: Queue,
    id: Uuid,
    actor: Actor<'_>,
) -> Result<JobView, ActionError> {
    let txn = db.begin().await?;
    let job = lock(&txn, queue, id).await?;
    let retryable = matches!(job.state, JobState::Dead | JobState::Failed);
    if !retryable {
        return Err(ActionError::WrongState {
            state: job.state,
            why: "only a dead job or one waiting for a retry can be retried",
        });
    }
    let ids = requeue(&txn, &[id]).await?;
    audit_log::record(
        &txn,
        actor,
        "job.retried",
        "job",
        &id.to_string(),
        serde_json::json!({
            "queue": queue.as_str(), "type": job.job_type, "from": job.state,
            "attempts": job.attempts, "last_error": job.last_error,
        }),
    )
    .await?;
    let mut job = lock(&txn, queue, id).await?;
    attach_history(&txn, std::slice::from_mut(&mut job)).await?;
    wake::commit(db, txn).await?;
    tracing::info!(job.id = %id, job.queue = queue.as_str(), retried = ids.len(), user.id = %actor.user_id, "job retried by an operator");
    Ok(job)
}

/// Puts rows `ids` that are dead or failed (waiting for a retry) back to `pending`, due now, reopens
/// and reopens their failed messages; the caller commits with `wake::commit`. Returns the
/// ids that went back.
async fn requeue(txn: &impl ConnectionTrait, ids: &[Uuid]) -> Result<Vec<Uuid>, DbErr> {
    let rows = txn
        .query_all_raw(stmt(
            &REQUEUE,
            [
                ids.to_vec().into(),
                message_types().into(),
                OutboxStatus::Pending.as_str().into(),
                NotificationStatus::Pending.as_str().into(),
            ],
        ))
        .await?;
    let ids = rows
        .iter()
        .map(|r| r.try_get::<Uuid>("", "id"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// Discard: job `id` of `queue` is deleted, unless it is running or done. A message job's
/// message that was still to be sent becomes `failed` ("discarded by an operator"); the
/// job's Redis copy, if any, is fenced out when a worker fetches it. Audited in the same
/// transaction.
pub async fn discard(
    db: &DatabaseConnection,
    queue: Queue,
    id: Uuid,
    actor: Actor<'_>,
) -> Result<JobView, ActionError> {
    let txn = db.begin().await?;
    let job = lock(&txn, queue, id).await?;
    if !matches!(job.status.as_str(), "pending" | "enqueued" | "dead") {
        return Err(ActionError::WrongState {
            state: job.state,
            why: "a running or finished job cannot be discarded",
        });
    }
    drop_rows(&txn, &[id]).await?;
    audit_log::record(
        &txn,
        actor,
        "job.discarded",
        "job",
        &id.to_string(),
        serde_json::json!({
            "queue": queue.as_str(), "type": job.job_type, "state": job.state,
            "attempts": job.attempts, "last_error": job.last_error, "payload": job.payload,
        }),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(job.id = %id, job.queue = queue.as_str(), user.id = %actor.user_id, "job discarded by an operator");
    Ok(job)
}

/// Deletes rows `ids` that are not running or done; gives up their unsent messages.
async fn drop_rows(txn: &impl ConnectionTrait, ids: &[Uuid]) -> Result<Vec<Uuid>, DbErr> {
    let rows = txn
        .query_all_raw(stmt(
            &DROP_ROWS,
            [
                ids.to_vec().into(),
                message_types().into(),
                NotificationStatus::Failed.as_str().into(),
            ],
        ))
        .await?;
    rows.iter().map(|r| r.try_get::<Uuid>("", "id")).collect()
}

/// The most jobs one bulk action takes: call again while `more` says so.
pub const BULK_LIMIT: u64 = 1000;

/// What a bulk action did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Bulk {
    /// How many jobs it took.
    pub count: u64,
    /// Their ids.
    pub ids: Vec<Uuid>,
    /// Whether matching jobs are left (past [`BULK_LIMIT`] per call): call again.
    pub more: bool,
}

/// What a bulk action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    /// [`retry`] each.
    Retry,
    /// [`discard`] each.
    Discard,
}

/// Retries or discards up to [`BULK_LIMIT`] jobs of `queue` (every queue if `None`) in
/// `state`, oldest first, in one transaction with one audit row. Rows a worker holds
/// locked at that moment are skipped (and reported by `more`).
pub async fn bulk(
    db: &DatabaseConnection,
    action: BulkAction,
    queue: Option<Queue>,
    state: JobState,
    actor: Actor<'_>,
) -> Result<Bulk, DbErr> {
    let filter = JobFilter {
        queue,
        state: Some(state),
        ..JobFilter::default()
    };
    let pick = filter
        .select()
        .column((o(), outbox_table::Column::Id))
        .order_by((o(), outbox_table::Column::Id), Order::Asc)
        .limit(BULK_LIMIT)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned();
    let txn = db.begin().await?;
    let picked = txn
        .query_all_raw(built(&pick))
        .await?
        .iter()
        .map(|r| r.try_get::<Uuid>("", "id"))
        .collect::<Result<Vec<_>, _>>()?;
    let ids = match action {
        BulkAction::Retry => requeue(&txn, &picked).await?,
        BulkAction::Discard => drop_rows(&txn, &picked).await?,
    };
    let left = Query::select()
        .expr_as(
            Expr::exists(filter.select().expr(Expr::cust("1")).to_owned()),
            Alias::new("more"),
        )
        .to_owned();
    let more = txn
        .query_one_raw(built(&left))
        .await?
        .map(|r| r.try_get::<bool>("", "more"))
        .transpose()?
        .unwrap_or(false);
    let (name, entity) = match action {
        BulkAction::Retry => ("jobs.retried", "retry"),
        BulkAction::Discard => ("jobs.discarded", "discard"),
    };
    audit_log::record(
        &txn,
        actor,
        name,
        "queue",
        queue.map_or("*", Queue::as_str),
        serde_json::json!({ "action": entity, "state": state, "count": ids.len(), "ids": ids }),
    )
    .await?;
    wake::commit(db, txn).await?;
    tracing::info!(job.queue = queue.map_or("*", Queue::as_str), jobs = ids.len(), action = entity, user.id = %actor.user_id, "bulk job action by an operator");
    Ok(Bulk {
        count: ids.len() as u64,
        ids,
        more,
    })
}
