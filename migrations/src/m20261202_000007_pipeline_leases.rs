//! The pipeline under real conditions: a job's lease starts when a worker takes it
//! (`running`, renewed while it runs, with the worker that holds it), worker processes
//! heart-beat into `workers` (PostgreSQL's clock, and the relay sizes each queue's Redis
//! window from their concurrency), `leases` elects one process for singleton work, and a
//! notification handed to its provider is `sending` until `sending_until`.

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
-- status: pending -> enqueued (in Redis, inside the queue's window) -> running (a worker
-- took it: lease_until renewed while it runs, locked_by says who) -> done | dead, or
-- back to pending for a retry or after its worker was lost.
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('pending', 'enqueued', 'running', 'done', 'dead'));
ALTER TABLE outbox
    ADD COLUMN started_at    timestamptz NULL,
    ADD COLUMN locked_by     text        NULL,
    ADD COLUMN worker_losses integer     NOT NULL DEFAULT 0 CHECK (worker_losses >= 0);
UPDATE outbox SET lease_until = NULL WHERE status = 'enqueued';
DROP INDEX outbox_enqueued_lease_until_idx;
-- The relay claims per queue, oldest due first.
CREATE INDEX outbox_pending_queue_run_at_idx ON outbox (queue, run_at) WHERE status = 'pending';
-- The window (rows in Redis per queue) and the reconciler's check of pushed rows.
CREATE INDEX outbox_enqueued_queue_idx ON outbox (queue, enqueued_at) WHERE status = 'enqueued';
-- The reconciler's search for runs whose worker stopped renewing them.
CREATE INDEX outbox_running_lease_until_idx ON outbox (lease_until) WHERE status = 'running';

-- One row per live worker process, heart-beaten with the database's clock.
CREATE TABLE workers (
    name         text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    queues       text[]      NOT NULL,
    concurrency  integer[]   NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(queues) = cardinality(concurrency))
);

-- Singleton work (the reconciler, the scheduler's leader): held while lease_until is in
-- the future; token grows on every change of holder (a fencing token).
CREATE TABLE leases (
    name        text        PRIMARY KEY,
    holder      text        NOT NULL,
    token       bigint      NOT NULL,
    lease_until timestamptz NOT NULL
);

-- A message handed to its provider: sent again only after sending_until (its sender died).
ALTER TABLE notifications ADD COLUMN sending_until timestamptz NULL;
"#;

const DOWN: &str = r#"
ALTER TABLE notifications DROP COLUMN sending_until;
DROP TABLE leases;
DROP TABLE workers;
DROP INDEX outbox_running_lease_until_idx;
DROP INDEX outbox_enqueued_queue_idx;
DROP INDEX outbox_pending_queue_run_at_idx;
UPDATE outbox SET status = 'pending', lease_until = NULL WHERE status = 'running';
ALTER TABLE outbox DROP COLUMN worker_losses, DROP COLUMN locked_by, DROP COLUMN started_at;
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('pending', 'enqueued', 'done', 'dead'));
CREATE INDEX outbox_enqueued_lease_until_idx ON outbox (lease_until) WHERE status = 'enqueued';
"#;

raw_sql_migration!();
