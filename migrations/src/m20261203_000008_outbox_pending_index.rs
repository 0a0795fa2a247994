//! Pending outbox rows are found per queue only: the `(run_at)` index let the planner walk
//! every queue's pending rows to find one queue's (measured: 90 ms a claim with 240 000 rows
//! of another queue waiting, 0.3 ms on `(queue, run_at)`).

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
DROP INDEX outbox_pending_run_at_idx;
"#;

const DOWN: &str = r#"
CREATE INDEX outbox_pending_run_at_idx ON outbox (run_at) WHERE status = 'pending';
"#;

raw_sql_migration!();
