//! One plain sentence that says where a job stands and why: "queued 4 min behind 312 jobs;
//! the email queue has 2 workers", "worker w-3 stopped heart-beating 25 s ago; the job is
//! handed to another worker in 5 s", "retry 4 of 20 at 12:14:05 after `SMTP 451`".
//!
//! [`explain`] is pure: it reads the job as the admin queries return it ([`JobView`]) and
//! the few facts around it ([`Surroundings`], read by [`surroundings`] in one bounded,
//! indexed round trip), so each case is unit-tested without a database. Times are UTC and
//! come from PostgreSQL's clock, the one clock that decides leases and due times.

use std::time::Duration;

use chrono::{DateTime, Utc};
use orderly_db::outbox::OutboxStatus;
use orderly_db::sql::{Sql, stmt};
use orderly_db::{quoted, sql};
use sea_orm::{ConnectionTrait, DbErr, Value};

use crate::jobs::{JobState, JobView};
use orderly_jobs::PolicyOverrides;

/// The most jobs counted ahead of a pending one: past it the sentence says "more than".
pub const AHEAD_CAP: u64 = 10_000;

/// What the sentence needs beyond the job's own row.
#[derive(Debug, Clone, PartialEq)]
pub struct Surroundings {
    /// PostgreSQL's clock when they were read.
    pub now: DateTime<Utc>,
    /// For a pending job: the jobs of its queue ahead of it, up to [`AHEAD_CAP`].
    pub ahead: Option<u64>,
    /// Live worker processes that drain the job's queue.
    pub workers: u64,
    /// Jobs of the queue those workers run at once, summed.
    pub concurrency: u64,
    /// Since when the queue is paused, if it is.
    pub paused_since: Option<DateTime<Utc>>,
}

/// The settings the sentence depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Attempts in all for this job's type (its retry policy with `JOB_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// How long a running job's worker may go without a heartbeat before it counts as
    /// stopped (a few of its heartbeat intervals).
    pub silent_after: Duration,
    /// How often the reconciler hands on runs whose lease ran out.
    pub reconcile_every: Duration,
}

/// The attempts in all of a job type as the worker counts them: its retry policy, with
/// `JOB_MAX_ATTEMPTS` when set ([`PolicyOverrides::policy_of`], the worker's rule).
pub fn max_attempts(job_type: &str, max_attempts_override: Option<u32>) -> u32 {
    let overrides = PolicyOverrides {
        max_attempts: max_attempts_override,
        base_delay: None,
    };
    overrides.policy_of(job_type).max_attempts
}

/// Where `job` stands, as one sentence.
pub fn explain(job: &JobView, around: &Surroundings, limits: &Limits) -> String {
    let now = around.now;
    let queue = job.queue.as_str();
    match job.state {
        JobState::Pending => {
            let waited = secs_between(job.run_at, now);
            let line = match around.ahead {
                Some(0) | None => format!("queued {}, first in line", span(waited)),
                Some(n) if n >= AHEAD_CAP => {
                    format!("queued {} behind more than {AHEAD_CAP} jobs", span(waited))
                }
                Some(n) => format!("queued {} behind {}", span(waited), plural(n, "job")),
            };
            let why = if let Some(since) = around.paused_since {
                format!(
                    "the {queue} queue is paused (since {}): it waits until an operator resumes it",
                    clock(since, now)
                )
            } else if around.workers == 0 {
                format!("no live worker drains the {queue} queue")
            } else {
                format!(
                    "the {queue} queue has {} (up to {} at once)",
                    plural(around.workers, "worker"),
                    plural(around.concurrency, "job")
                )
            };
            format!("{line}; {why}")
        }
        JobState::Scheduled => with_pause(
            format!(
                "scheduled for {} (in {})",
                clock(job.run_at, now),
                span(secs_between(now, job.run_at))
            ),
            around,
        ),
        JobState::Failed => {
            let next = u32::try_from(job.attempts.max(0))
                .unwrap_or(u32::MAX)
                .saturating_add(1);
            let error = job
                .last_error
                .as_deref()
                .map_or_else(|| "an error".to_owned(), |e| format!("`{}`", short(e)));
            with_pause(
                format!(
                    "retry {next} of {} at {} (in {}) after {error}",
                    limits.max_attempts,
                    clock(job.run_at, now),
                    span(secs_between(now, job.run_at))
                ),
                around,
            )
        }
        JobState::Running => running(job, around, limits),
        JobState::Dead => {
            let error = job
                .last_error
                .as_deref()
                .map_or("no error was recorded", short);
            let mut line = format!(
                "dead: {error} (given up after {}",
                plural(job.attempts.max(0) as u64, "attempt")
            );
            if let Some(at) = job.completed_at {
                line.push_str(&format!(" at {}", clock(at, now)));
            }
            line.push(')');
            line
        }
        JobState::Done => {
            let mut line = match job.completed_at {
                Some(at) => format!("done at {}", clock(at, now)),
                None => "done".to_owned(),
            };
            line.push_str(&format!(
                " after {}",
                plural(job.attempts.max(1) as u64, "attempt")
            ));
            if let (Some(started), Some(completed)) = (job.started_at, job.completed_at) {
                line.push_str(&format!(
                    "; the last one took {}",
                    precise(secs_between(started, completed))
                ));
            }
            line
        }
    }
}

/// A running job: alive on its worker, or held by a worker that stopped.
fn running(job: &JobView, around: &Surroundings, limits: &Limits) -> String {
    let now = around.now;
    let worker = job.locked_by.as_deref().unwrap_or("(unknown)");
    let silent = limits.silent_after.as_secs_f64();
    match job.heartbeat_age_s {
        Some(age) if age <= silent => {
            let mut line = format!("running on worker {worker}");
            if let Some(started) = job.started_at {
                line.push_str(&format!(
                    " since {} ({} so far)",
                    clock(started, now),
                    span(secs_between(started, now))
                ));
            }
            line.push_str(&format!(", heartbeat {} ago", span(age)));
            line
        }
        heartbeat => {
            let mut line = match heartbeat {
                Some(age) => format!("worker {worker} stopped heart-beating {} ago", span(age)),
                None => format!("worker {worker} is gone (it no longer heart-beats)"),
            };
            let last = job.attempts.max(0) as u64 >= u64::from(limits.max_attempts);
            let then = if last {
                format!(
                    "; that was attempt {} of {}, so the job is then dead",
                    job.attempts, limits.max_attempts
                )
            } else {
                String::new()
            };
            match job.lease_until {
                Some(until) if until > now => line.push_str(&format!(
                    "; the job is handed to another worker in {}{then}",
                    span(secs_between(now, until))
                )),
                Some(until) => line.push_str(&format!(
                    "; its lease ran out {} ago, and the reconciler hands the job to another worker within {}{then}",
                    span(secs_between(until, now)),
                    span(limits.reconcile_every.as_secs_f64())
                )),
                None => line.push_str(&then),
            }
            line
        }
    }
}

/// `line`, and that the queue is paused if it is.
fn with_pause(line: String, around: &Surroundings) -> String {
    match around.paused_since {
        Some(since) => format!(
            "{line}; the queue is paused (since {}), so it waits past that until it is resumed",
            clock(since, around.now)
        ),
        None => line,
    }
}

/// Seconds from `from` to `to`, never negative.
fn secs_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// A wall-clock time: `12:01:03` today (UTC), with the date on another day.
fn clock(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if t.date_naive() == now.date_naive() {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// A coarse duration for people, as the sentences say it: `25 s`, `4 min`, `2 h 5 min`,
/// `3 d` (pages use it for ages too, so the two read alike).
pub fn span(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..120 => format!("{s} s"),
        120..7_200 => format!("{} min", s / 60),
        7_200..172_800 => match (s / 3600, s % 3600 / 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        },
        _ => format!("{} d", s / 86_400),
    }
}

/// A short duration, to the millisecond below a second: how long a run took.
fn precise(secs: f64) -> String {
    if secs < 1.0 {
        format!("{} ms", (secs * 1000.0).round() as u64)
    } else if secs < 10.0 {
        format!("{secs:.1} s")
    } else {
        span(secs)
    }
}

/// `1 job`, `312 jobs`.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The first line of an error, at most 160 characters: what a sentence or a list quotes.
pub fn short(error: &str) -> &str {
    let line = error.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(160) {
        Some((end, _)) => &line[..end],
        None => line,
    }
}

const PENDING: &str = quoted!(OutboxStatus::Pending);
const ENQUEUED: &str = quoted!(OutboxStatus::Enqueued);

sql! {
    /// The clock, queue `$1`'s pause, and its workers and their concurrency that heartbeat
    /// within the last `$2` seconds.
    SURROUNDINGS = "SELECT now() AS now,
                    (SELECT paused_at FROM queue_pauses WHERE queue = $1) AS paused_at,
                    (SELECT count(*) FROM workers w
                      WHERE w.heartbeat_at > now() - make_interval(secs => $2)
                        AND $1 = ANY (w.queues)) AS workers,
                    (SELECT COALESCE(sum(u.n), 0)::bigint
                       FROM workers w, unnest(w.queues, w.concurrency) AS u(queue, n)
                      WHERE w.heartbeat_at > now() - make_interval(secs => $2)
                        AND u.queue = $1) AS concurrency";
    /// Up to `$4` jobs of queue `$1` in Redis pushed before (`enqueued_at`, `id`) (`$2`, `$3`).
    AHEAD_OF_ENQUEUED = "SELECT count(*) AS n FROM (
                SELECT 1 FROM outbox
                 WHERE queue = $1 AND status = ", ENQUEUED, " AND (enqueued_at, id) < ($2, $3)
                 LIMIT $4) a";
    /// Up to `$4` jobs of queue `$1` in Redis, plus up to `$4` due before (`run_at`, `id`)
    /// (`$2`, `$3`).
    AHEAD_OF_PENDING = "SELECT (SELECT count(*) FROM (
                        SELECT 1 FROM outbox WHERE queue = $1 AND status = ", ENQUEUED, " LIMIT $4) e)
                  + (SELECT count(*) FROM (
                        SELECT 1 FROM outbox
                         WHERE queue = $1 AND status = ", PENDING, " AND (run_at, id) < ($2, $3)
                         LIMIT $4) p) AS n";
}

/// Reads what [`explain`] needs around `job`: the clock, its queue's pause and live
/// workers (the `workers` table: one row per process), and for a pending job how many of
/// its queue's jobs are ahead of it, counted by the pending and enqueued partial indexes
/// and stopped at [`AHEAD_CAP`]. A worker is live while its heartbeat is within
/// `live_within` (as the relay counts them).
pub async fn surroundings(
    db: &impl ConnectionTrait,
    job: &JobView,
    live_within: Duration,
) -> Result<Surroundings, DbErr> {
    let queue = job.queue.as_str().to_owned();
    let row = db
        .query_one_raw(stmt(
            &SURROUNDINGS,
            [queue.clone().into(), live_within.as_secs_f64().into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("no row from the surroundings query".into()))?;
    let count =
        |col: &str| -> Result<u64, DbErr> { Ok(row.try_get::<i64>("", col)?.max(0) as u64) };
    let ahead = if job.state == JobState::Pending {
        Some(ahead(db, job).await?)
    } else {
        None
    };
    Ok(Surroundings {
        now: row.try_get("", "now")?,
        ahead,
        workers: count("workers")?,
        concurrency: count("concurrency")?,
        paused_since: row.try_get("", "paused_at")?,
    })
}

/// The jobs of a pending job's queue ahead of it, up to [`AHEAD_CAP`]: in Redis, those
/// pushed before it; in PostgreSQL, every job already in Redis and the due rows before it
/// in the relay's order (`run_at`, `id`).
async fn ahead(db: &impl ConnectionTrait, job: &JobView) -> Result<u64, DbErr> {
    let queue = job.queue.as_str().to_owned();
    let cap = AHEAD_CAP as i64;
    let (sql, values): (&Sql, Vec<Value>) = match (job.status.as_str(), job.enqueued_at) {
        ("enqueued", Some(enqueued_at)) => (
            &AHEAD_OF_ENQUEUED,
            vec![queue.into(), enqueued_at.into(), job.id.into(), cap.into()],
        ),
        _ => (
            &AHEAD_OF_PENDING,
            vec![queue.into(), job.run_at.into(), job.id.into(), cap.into()],
        ),
    };
    let n = db
        .query_one_raw(stmt(sql, values))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    Ok((n.max(0) as u64).min(AHEAD_CAP))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;
    use orderly_jobs::{Job, Noop, Queue, RetryPolicy, SendEmail};

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 11, h, m, s).unwrap()
    }

    fn job(state: JobState, status: &str) -> JobView {
        JobView {
            id: Uuid::now_v7(),
            queue: Queue::Email,
            job_type: "send_email".into(),
            state,
            status: status.into(),
            attempts: 0,
            worker_losses: 0,
            last_error: None,
            run_at: at(12, 0, 0),
            next_retry_at: None,
            created_at: at(12, 0, 0),
            updated_at: at(12, 0, 0),
            enqueued_at: None,
            started_at: None,
            completed_at: None,
            locked_by: None,
            lease_until: None,
            heartbeat_age_s: None,
            request_id: None,
            booking_id: None,
            payload: serde_json::json!({}),
            failed_attempts: Vec::new(),
        }
    }

    fn around(now: DateTime<Utc>) -> Surroundings {
        Surroundings {
            now,
            ahead: None,
            workers: 2,
            concurrency: 128,
            paused_since: None,
        }
    }

    const LIMITS: Limits = Limits {
        max_attempts: 20,
        silent_after: Duration::from_secs(9),
        reconcile_every: Duration::from_secs(5),
    };

    #[test]
    fn a_pending_job_says_how_long_it_waited_behind_how_many_and_who_drains_its_queue() {
        let pending = job(JobState::Pending, "pending");
        let around = Surroundings {
            ahead: Some(312),
            ..around(at(12, 4, 10))
        };
        assert_eq!(
            explain(&pending, &around, &LIMITS),
            "queued 4 min behind 312 jobs; the email queue has 2 workers (up to 128 jobs at once)"
        );
    }

    #[test]
    fn a_pending_job_first_in_line_behind_a_capped_count_or_with_no_worker_says_so() {
        let pending = job(JobState::Pending, "enqueued");
        let first = Surroundings {
            ahead: Some(0),
            workers: 1,
            concurrency: 1,
            ..around(at(12, 0, 3))
        };
        assert_eq!(
            explain(&pending, &first, &LIMITS),
            "queued 3 s, first in line; the email queue has 1 worker (up to 1 job at once)"
        );
        let crowded = Surroundings {
            ahead: Some(AHEAD_CAP),
            workers: 0,
            concurrency: 0,
            ..around(at(14, 30, 0))
        };
        assert_eq!(
            explain(&pending, &crowded, &LIMITS),
            "queued 2 h 30 min behind more than 10000 jobs; no live worker drains the email queue"
        );
    }

    #[test]
    fn a_pending_job_of_a_paused_queue_says_it_waits_for_a_resume() {
        let pending = job(JobState::Pending, "pending");
        let paused = Surroundings {
            ahead: Some(1),
            paused_since: Some(at(11, 58, 0)),
            ..around(at(12, 1, 0))
        };
        assert_eq!(
            explain(&pending, &paused, &LIMITS),
            "queued 60 s behind 1 job; the email queue is paused (since 11:58:00): it waits until an operator resumes it"
        );
    }

    #[test]
    fn a_running_job_with_a_live_worker_names_it_its_start_and_its_last_heartbeat() {
        let mut running = job(JobState::Running, "running");
        running.locked_by = Some("w-7".into());
        running.started_at = Some(at(12, 1, 3));
        running.lease_until = Some(at(12, 1, 40));
        running.heartbeat_age_s = Some(2.2);
        assert_eq!(
            explain(&running, &around(at(12, 1, 13)), &LIMITS),
            "running on worker w-7 since 12:01:03 (10 s so far), heartbeat 2 s ago"
        );
    }

    #[test]
    fn a_running_job_whose_worker_went_silent_says_when_it_is_handed_on() {
        let mut running = job(JobState::Running, "running");
        running.attempts = 1;
        running.locked_by = Some("w-3".into());
        running.started_at = Some(at(12, 0, 0));
        running.lease_until = Some(at(12, 0, 30));
        running.heartbeat_age_s = Some(25.0);
        assert_eq!(
            explain(&running, &around(at(12, 0, 25)), &LIMITS),
            "worker w-3 stopped heart-beating 25 s ago; the job is handed to another worker in 5 s"
        );
        // Past the lease, the reconciler's next round takes it; on the last attempt it dies.
        running.attempts = 20;
        running.heartbeat_age_s = None;
        assert_eq!(
            explain(&running, &around(at(12, 0, 33)), &LIMITS),
            "worker w-3 is gone (it no longer heart-beats); its lease ran out 3 s ago, and the reconciler hands the job to another worker within 5 s; that was attempt 20 of 20, so the job is then dead"
        );
    }

    #[test]
    fn a_job_waiting_for_a_retry_says_which_attempt_when_and_after_what() {
        let mut failed = job(JobState::Failed, "pending");
        failed.attempts = 3;
        failed.run_at = at(12, 14, 5);
        failed.last_error = Some("SMTP 451\nat line 2 of the trace".into());
        assert_eq!(
            explain(&failed, &around(at(12, 12, 0)), &LIMITS),
            "retry 4 of 20 at 12:14:05 (in 2 min) after `SMTP 451`"
        );
        let paused = Surroundings {
            paused_since: Some(at(12, 10, 0)),
            ..around(at(12, 12, 0))
        };
        assert!(explain(&failed, &paused, &LIMITS).ends_with(
            "; the queue is paused (since 12:10:00), so it waits past that until it is resumed"
        ));
    }

    #[test]
    fn a_scheduled_job_says_when_it_falls_due() {
        let mut scheduled = job(JobState::Scheduled, "pending");
        scheduled.run_at = at(12, 30, 0);
        assert_eq!(
            explain(&scheduled, &around(at(12, 25, 0)), &LIMITS),
            "scheduled for 12:30:00 (in 5 min)"
        );
    }

    #[test]
    fn a_dead_job_gives_its_error_first() {
        let mut dead = job(JobState::Dead, "dead");
        dead.attempts = 1;
        dead.last_error = Some("declined card".into());
        dead.completed_at = Some(at(9, 15, 0));
        assert_eq!(
            explain(&dead, &around(at(12, 0, 0)), &LIMITS),
            "dead: declined card (given up after 1 attempt at 09:15:00)"
        );
        dead.last_error = None;
        dead.completed_at = Some(Utc.with_ymd_and_hms(2026, 12, 10, 23, 0, 0).unwrap());
        assert_eq!(
            explain(&dead, &around(at(12, 0, 0)), &LIMITS),
            "dead: no error was recorded (given up after 1 attempt at 2026-12-10 23:00:00)"
        );
    }

    #[test]
    fn a_done_job_says_when_and_how_long_its_last_run_took() {
        let mut done = job(JobState::Done, "done");
        done.attempts = 2;
        done.started_at = Some(at(12, 3, 2));
        done.completed_at = Some(at(12, 3, 2) + chrono::Duration::milliseconds(1300));
        assert_eq!(
            explain(&done, &around(at(12, 5, 0)), &LIMITS),
            "done at 12:03:03 after 2 attempts; the last one took 1.3 s"
        );
    }

    #[test]
    fn a_long_error_is_cut_to_its_first_160_characters() {
        let long = "é".repeat(300);
        assert_eq!(short(&long).chars().count(), 160);
        assert_eq!(short("  one\ntwo"), "one");
    }

    #[test]
    fn each_kind_has_its_own_attempts_and_the_override_wins() {
        assert_eq!(
            max_attempts("send_email", None),
            SendEmail::POLICY.max_attempts
        );
        assert_eq!(max_attempts("noop", None), Noop::POLICY.max_attempts);
        assert_eq!(
            max_attempts("no_such_job", None),
            RetryPolicy::DEFAULT.max_attempts
        );
        assert_eq!(max_attempts("send_email", Some(3)), 3);
        assert_eq!(max_attempts("send_email", Some(0)), 1);
    }
}
