//! The statements of `orderly-bench`, declared with `orderly_db::sql!` in this library so that
//! `tests/sql.rs` can PREPARE each against the migrated schema (a binary's cannot be linked
//! into a test).

use orderly_db::bookings::BookingStatus;
use orderly_db::notifications::NotificationStatus;
use orderly_db::outbox::OutboxStatus;
use orderly_db::sql::Sql;
use orderly_db::{quoted, sql};
use orderly_jobs::outbox::LIVE;

const PENDING: &str = quoted!(OutboxStatus::Pending);
const ENQUEUED: &str = quoted!(OutboxStatus::Enqueued);
const RUNNING: &str = quoted!(OutboxStatus::Running);
const SENT: &str = quoted!(NotificationStatus::Sent);

sql! {
    /// `noop` jobs for the ids `$1`.
    pub DRAIN_NOOP = "INSERT INTO outbox (id, queue, job_type, payload, task_id)
             SELECT gen_random_uuid(), 'bookings', 'noop', jsonb_build_object('id', x), 'noop:' || x
               FROM unnest($1::uuid[]) AS x";

    /// Reminder e-mail notifications `$1` and the `send_email` jobs that send them.
    pub DRAIN_SEND_EMAIL = "WITH n AS (
                INSERT INTO notifications (id, dedup_key, channel, kind, recipient)
                SELECT x, 'bench:' || x, 'email', 'reminder', 'bench@example.com' FROM unnest($1::uuid[]) AS x
                RETURNING id)
             INSERT INTO outbox (id, queue, job_type, payload, task_id)
             SELECT gen_random_uuid(), 'email', 'send_email', jsonb_build_object('notification_id', id), 'send_email:' || id
               FROM n";

    /// 1 once no job of type `$1` is due on queue `$2`, queued or running, else 0.
    pub DRAINED = "SELECT CASE WHEN EXISTS (SELECT 1 FROM outbox WHERE status = ", PENDING, " AND queue = $2 AND run_at <= now() AND job_type = $1)
                       OR EXISTS (SELECT 1 FROM outbox WHERE status IN (", ENQUEUED, ", ", RUNNING, ") AND job_type = $1)
                     THEN 0 ELSE 1 END::float8";

    /// How many of the jobs `$1` (task ids) are done.
    pub DONE_OF = "SELECT count(*)::float8 FROM outbox WHERE task_id = ANY($1) AND status = ", quoted!(OutboxStatus::Done);

    /// How many of the notifications `$1` are sent.
    pub SENT_OF = "SELECT count(*)::float8 FROM notifications WHERE id = ANY($1) AND status = ", SENT, " AND sent_at IS NOT NULL";

    /// Seconds from `$2` to the last completion of the jobs `$1` (task ids).
    pub DRAIN_SPAN = "SELECT extract(epoch FROM max(completed_at) - $2)::float8 FROM outbox WHERE task_id = ANY($1)";

    /// How many `noop` jobs the outbox holds.
    pub NOOP_ROWS = "SELECT count(*)::float8 FROM outbox WHERE job_type = 'noop'";

    /// The `$2` percentile of the jobs `$1` (task ids)' time from written to done, in ms.
    pub JOB_LATENCY_MS = "SELECT (percentile_cont($2) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at)) * 1000)::float8
                   FROM outbox WHERE task_id = ANY($1)";

    /// A listing with more than `$1` seats left.
    pub LISTING_WITH_SEATS = "SELECT id FROM listings WHERE seats_left > $1 LIMIT 1";

    /// A customer.
    pub A_CUSTOMER = "SELECT id FROM users WHERE role = 'customer' LIMIT 1";

    /// How many of the bookings `$1` expired.
    pub EXPIRED_OF = "SELECT count(*)::float8 FROM bookings WHERE id = ANY($1) AND status = ", quoted!(BookingStatus::Expired);

    /// The `$2` percentile of the bookings `$1`' time from hold end to expiry, in ms.
    pub EXPIRY_LAG_MS = "SELECT (percentile_cont($2) WITHIN GROUP (ORDER BY extract(epoch FROM expired_at - hold_expires_at)) * 1000)::float8
                   FROM bookings WHERE id = ANY($1)";

    /// Transactions committed in this database so far.
    pub COMMITS = "SELECT xact_commit::float8 FROM pg_stat_database WHERE datname = current_database()";

    /// Bytes of WAL written so far.
    pub WAL_BYTES = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8";

    /// The database's clock, in seconds since the epoch.
    pub NOW_EPOCH = "SELECT extract(epoch FROM now())::float8";

    /// How many bookings were made since `$1` (seconds since the epoch).
    pub BOOKED_SINCE = "SELECT count(*)::float8 FROM bookings WHERE created_at >= to_timestamp($1)";

    /// How many bookings made since `$1` are paid with every message about them sent.
    pub COMPLETED_SINCE = "SELECT count(*)::float8 FROM bookings b
          WHERE b.created_at >= to_timestamp($1) AND b.status = ", quoted!(BookingStatus::Paid), "
            AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.booking_id = b.id AND n.status <> ", SENT, ")";

    /// Jobs due now that have not ended.
    pub UNFINISHED = "SELECT count(*)::float8 FROM outbox
  WHERE status IN ", LIVE, " AND run_at <= now()";

    /// 1 while any job due now has not ended, else 0: answered from the partial indexes, so
    /// that polling it costs the database next to nothing while the worker drains.
    pub ANY_UNFINISHED = "SELECT (
    EXISTS (SELECT 1 FROM unnest(ARRAY['bookings', 'payments', 'email', 'sms', 'reports']) AS q(queue)
             WHERE EXISTS (SELECT 1 FROM outbox WHERE status = ", PENDING, " AND queue = q.queue AND run_at <= now()))
    OR EXISTS (SELECT 1 FROM outbox WHERE status = ", ENQUEUED, ")
    OR EXISTS (SELECT 1 FROM outbox WHERE status = ", RUNNING, "))::int::float8";

    /// The value of setting `$1`, as `SHOW` prints it.
    pub SETTING = "SELECT current_setting($1)";

    /// 1 once no `noop` job is due, queued or running, else 0.
    pub NOOPS_DRAINED = "SELECT CASE WHEN EXISTS (SELECT 1 FROM outbox WHERE status = ", PENDING, " AND queue = 'bookings' AND job_type = 'noop' AND run_at <= now())
                      OR EXISTS (SELECT 1 FROM outbox WHERE status IN (", ENQUEUED, ", ", RUNNING, ") AND job_type = 'noop')
                     THEN 1 ELSE 0 END::float8";

    /// `noop` jobs `noop:$1:g` for g from `$2` to `$3`.
    pub BACKLOG_NOOPS = "INSERT INTO outbox (id, queue, job_type, payload, task_id)
             SELECT gen_random_uuid(), 'bookings', 'noop', jsonb_build_object('id', gen_random_uuid()),
                    'noop:' || $1 || ':' || g
               FROM generate_series($2::bigint, $3::bigint) AS g";

    /// How many jobs whose task id is like `$1` are done.
    pub DONE_LIKE = "SELECT count(*)::float8 FROM outbox WHERE task_id LIKE $1 AND status = ", quoted!(OutboxStatus::Done);

    /// Seconds from the first start to the last completion of the jobs whose task id is like `$1`.
    pub SPAN_LIKE = "SELECT extract(epoch FROM max(completed_at) - min(started_at))::float8 FROM outbox WHERE task_id LIKE $1";
}

// Read from pg_stat_statements, which is there only when the server was started with it (the
// bench does without): declared but not registered, so the schema check does not ask for it.

/// Statements this database ran so far (pg_stat_statements).
pub const STATEMENTS_RUN: Sql = Sql {
    name: concat!(module_path!(), "::STATEMENTS_RUN"),
    text: "SELECT sum(calls)::float8 FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = current_database()",
};

/// The totals of each statement (by its text) in this database so far (pg_stat_statements).
pub const STATEMENT_TOTALS: Sql = Sql {
    name: concat!(module_path!(), "::STATEMENT_TOTALS"),
    text: "SELECT regexp_replace(left(s.query, 160), '\\s+', ' ', 'g') AS query, sum(s.calls)::float8 AS calls,
                    sum(s.total_exec_time)::float8 AS ms, sum(s.plans)::float8 AS plans,
                    sum(s.total_plan_time)::float8 AS plan_ms
               FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
              WHERE d.datname = current_database() GROUP BY 1",
};
