//! The scheduler: a run keeps the dedup key of the job its tick enqueued (the job's outcome
//! becomes the run's), and the indexes its periodic work searches by: runs whose job has
//! not ended, bookings confirmed but not yet captured (the sweep), and the rows retention
//! deletes by age (finished jobs, processed webhook events).

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE schedule_runs ADD COLUMN task_id text NULL;
CREATE INDEX schedule_runs_running_task_id_idx ON schedule_runs (task_id) WHERE status = 'running';
CREATE INDEX bookings_confirmed_confirmed_at_idx ON bookings (confirmed_at)
    WHERE status = 'confirmed';
CREATE INDEX outbox_finished_completed_at_idx ON outbox (status, completed_at)
    WHERE status IN ('done', 'dead');
CREATE INDEX processed_webhook_events_received_at_idx ON processed_webhook_events (received_at);
"#;

const DOWN: &str = r#"
DROP INDEX processed_webhook_events_received_at_idx;
DROP INDEX outbox_finished_completed_at_idx;
DROP INDEX bookings_confirmed_confirmed_at_idx;
DROP INDEX schedule_runs_running_task_id_idx;
ALTER TABLE schedule_runs DROP COLUMN task_id;
"#;

raw_sql_migration!();
