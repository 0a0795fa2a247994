//! Operations on the queues: each job's failed attempts, which queues an operator paused
//! (the relay claims nothing for them; the API also raises the queue's Redis flag so
//! workers fetch nothing), and the indexes the admin API reads by, so that no request walks the whole outbox: per-queue
//! counts of retries, dead and recently done jobs, and the jobs list by queue, state, type
//! or booking, newest (highest UUIDv7) first.

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE queue_pauses (
    queue     text        PRIMARY KEY
                          CHECK (queue IN ('email', 'sms', 'payments', 'bookings', 'reports')),
    paused_by uuid        NULL REFERENCES users (id) ON DELETE SET NULL,
    paused_at timestamptz NOT NULL DEFAULT now()
);

-- Jobs waiting for a retry after an error (the `failed` count and list).
-- The history of a job's failed attempts (a retry, death, or lost worker each write one
-- row with the end they record; a successful attempt is the outbox row itself, so the
-- common path writes nothing here). Goes with its job.
CREATE TABLE outbox_attempts (
    outbox_id   uuid        NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL CHECK (attempt > 0),
    started_at  timestamptz NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    outcome     text        NOT NULL CHECK (outcome IN ('retry', 'dead', 'lost')),
    error       text        NOT NULL,
    worker      text        NULL,
    PRIMARY KEY (outbox_id, attempt)
);

CREATE INDEX outbox_pending_retry_idx ON outbox (queue, run_at)
    WHERE status = 'pending' AND last_error IS NOT NULL;
-- `done_last_hour` and the `done` list per queue.
CREATE INDEX outbox_done_queue_completed_at_idx ON outbox (queue, completed_at)
    WHERE status = 'done';
-- The `dead` count and list per queue.
CREATE INDEX outbox_dead_queue_completed_at_idx ON outbox (queue, completed_at)
    WHERE status = 'dead';
-- Running jobs per queue (bounded by the workers' concurrency, but read per queue).
CREATE INDEX outbox_running_queue_idx ON outbox (queue) WHERE status = 'running';
-- The jobs list: newest first within a queue and status, a status, or a type.
DROP INDEX outbox_queue_status_idx;
CREATE INDEX outbox_queue_status_id_idx ON outbox (queue, status, id);
CREATE INDEX outbox_status_id_idx ON outbox (status, id);
CREATE INDEX outbox_job_type_id_idx ON outbox (job_type, id);
-- A booking's jobs: those about it, and those about its messages.
CREATE INDEX outbox_booking_id_idx ON outbox ((payload ->> 'booking_id'))
    WHERE payload ? 'booking_id';
CREATE INDEX outbox_notification_id_idx ON outbox ((payload ->> 'notification_id'))
    WHERE payload ? 'notification_id';
"#;

const DOWN: &str = r#"
DROP INDEX outbox_notification_id_idx;
DROP INDEX outbox_booking_id_idx;
DROP INDEX outbox_job_type_id_idx;
DROP INDEX outbox_status_id_idx;
DROP INDEX outbox_queue_status_id_idx;
CREATE INDEX outbox_queue_status_idx ON outbox (queue, status);
DROP INDEX outbox_running_queue_idx;
DROP INDEX outbox_dead_queue_completed_at_idx;
DROP INDEX outbox_done_queue_completed_at_idx;
DROP INDEX outbox_pending_retry_idx;
DROP TABLE outbox_attempts;
DROP TABLE queue_pauses;
"#;

raw_sql_migration!();
