//! Retention: what the database forgets, and when, table by table and state by state.
//!
//! | rows | kept | why that long |
//! | --- | --- | --- |
//! | finished (`done`) jobs | 1 day | their effects are in the domain rows; a day covers an operator's look at yesterday |
//! | `done` `send_email` / `send_sms` jobs | 30 days | the delivery trail of a message (attempts, the request that caused it) |
//! | `done` `daily_report` jobs | 30 days | their key (`daily_report:<day>`) keeps a day's nightly report single even if a tick is fired again for a day already made (a changed `REPORT_CRON` moves the ticks); the catch-up window (`REPORT_CATCH_UP_DAYS`) is at most 30 days |
//! | `dead` jobs | 30 days | an operator still needs them (to read the error, retry or discard) |
//! | idempotency keys | until `expires_at` (24 h) | the contract keeps them 24 h; past it a repeat is a new request |
//! | processed webhook events | 30 days | Stripe redelivers an event for up to 3 days |
//! | dashboard sessions | until `expires_at` (24 h after sign-in) | past it the cookie opens nothing; an idle-expired session reaches it within a day |
//! | scheduler runs | 30 days, and always each entry's latest | the latest run is where the scheduler's catch-up starts |
//!
//! A job whose scheduler run has not taken its outcome yet stays, whatever its age.
//!
//! The other jobs' keys guard nothing once the job is done: each is derived from a booking
//! or a message and written only by the state change that asks for it (a booking confirmed
//! once, a message row inserted once), and those rows stay. Jobs still `pending`,
//! `enqueued` or `running` are never touched, nor are notifications (their keys make each
//! message once), bookings, payments or the audit log.
//!
//! Deletes go in batches of row ids taken with `FOR UPDATE SKIP LOCKED`, each its own short
//! statement, so that traffic never waits behind them.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr};

use orderly_db::outbox::OutboxStatus;
use orderly_db::schedule_runs::ScheduleRunStatus;
use orderly_db::sql::{Sql, stmt};
use orderly_db::{quoted, sql};
use orderly_jobs::{DailyReport, Job, SendEmail, SendSms};

/// One rule: which rows of which table go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its name in logs.
    pub name: &'static str,
    /// Deletes up to `$1` of the rows that go, skipping rows locked by traffic.
    delete: &'static Sql,
}

/// Every rule, in the order a run applies them.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "outbox_done",
            delete: &OUTBOX_DONE,
        },
        Rule {
            name: "outbox_done_kept_30_days",
            delete: &OUTBOX_DONE_KEPT_30_DAYS,
        },
        Rule {
            name: "outbox_dead",
            delete: &OUTBOX_DEAD,
        },
        Rule {
            name: "idempotency_keys",
            delete: &IDEMPOTENCY_KEYS,
        },
        Rule {
            name: "admin_sessions",
            delete: &ADMIN_SESSIONS,
        },
        Rule {
            name: "processed_webhook_events",
            delete: &PROCESSED_WEBHOOK_EVENTS,
        },
        Rule {
            name: "schedule_runs",
            delete: &SCHEDULE_RUNS,
        },
    ]
}

/// A scheduler run takes its outcome from its job: the job stays until it has.
const UNREAD: &str = orderly_db::sql::const_format::concatcp!(
    "NOT EXISTS (SELECT 1 FROM schedule_runs r WHERE r.status = ",
    quoted!(ScheduleRunStatus::Running),
    " AND r.task_id = outbox.task_id)"
);

/// The jobs whose `done` rows are kept 30 days, as a SQL list.
const KEPT_LONG: &str = orderly_db::sql::const_format::concatcp!(
    "('",
    SendEmail::NAME,
    "', '",
    SendSms::NAME,
    "', '",
    DailyReport::NAME,
    "')"
);

const DONE: &str = quoted!(OutboxStatus::Done);

/// Deletes up to `$1` rows of `$table` that match the condition (the rest of the
/// arguments, concatenated), skipping rows locked by traffic.
macro_rules! delete_batch {
    ($table:literal, $($condition:expr),+) => {
        orderly_db::sql::const_format::concatcp!(
            "DELETE FROM ", $table, " WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM ", $table, " WHERE ", $($condition,)+ "
                 LIMIT $1 FOR UPDATE SKIP LOCKED))"
        )
    };
}

sql! {
    /// Done jobs finished more than a day ago, but those kept 30 days.
    OUTBOX_DONE = delete_batch!("outbox", "status = ", DONE,
        " AND completed_at < now() - interval '1 day' AND job_type NOT IN ", KEPT_LONG,
        " AND ", UNREAD);

    /// Done jobs finished more than 30 days ago.
    OUTBOX_DONE_KEPT_30_DAYS = delete_batch!("outbox", "status = ", DONE,
        " AND completed_at < now() - interval '30 days' AND ", UNREAD);

    /// Dead jobs given up more than 30 days ago.
    OUTBOX_DEAD = delete_batch!("outbox", "status = ", quoted!(OutboxStatus::Dead),
        " AND completed_at < now() - interval '30 days' AND ", UNREAD);

    /// Expired idempotency keys.
    IDEMPOTENCY_KEYS = delete_batch!("idempotency_keys", "expires_at < now()");

    /// Expired dashboard sessions.
    ADMIN_SESSIONS = delete_batch!("admin_sessions", "expires_at < now()");

    /// Webhook events received more than 30 days ago.
    PROCESSED_WEBHOOK_EVENTS = delete_batch!("processed_webhook_events",
        "received_at < now() - interval '30 days'");

    /// Scheduler runs older than 30 days, but each entry's latest.
    SCHEDULE_RUNS = delete_batch!("schedule_runs", "scheduled_for < now() - interval '30 days'
                 AND (schedule_name, scheduled_for) NOT IN
                     (SELECT schedule_name, max(scheduled_for) FROM schedule_runs GROUP BY 1)");
}

/// How many rows a rule removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// The rule.
    pub rule: &'static str,
    /// Rows deleted.
    pub rows: u64,
}

/// Applies every rule in batches of `batch` rows until nothing is left to delete or
/// `budget` is spent (the rest waits for the next run). Returns what each rule removed.
pub async fn prune(
    db: &impl ConnectionTrait,
    batch: u64,
    budget: Duration,
) -> Result<Vec<Pruned>, DbErr> {
    let deadline = tokio::time::Instant::now() + budget;
    let mut pruned = Vec::new();
    for rule in rules() {
        let mut rows = 0;
        while tokio::time::Instant::now() < deadline {
            let deleted = delete_batch(db, &rule, batch).await?;
            rows += deleted;
            if deleted < batch {
                break;
            }
        }
        pruned.push(Pruned {
            rule: rule.name,
            rows,
        });
    }
    Ok(pruned)
}

/// Deletes up to `batch` rows that `rule` says go; rows locked by traffic are skipped.
async fn delete_batch(db: &impl ConnectionTrait, rule: &Rule, batch: u64) -> Result<u64, DbErr> {
    let done = db
        .execute_raw(stmt(rule.delete, [(batch as i64).into()]))
        .await?;
    Ok(done.rows_affected())
}
