//! Scheduled work and its traces: the stored daily reports, one row per cron firing
//! (whose primary key lets only one scheduler replica run it), and the audit log of who
//! changed what.

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
-- One report per day; asking again for a day replaces it.
CREATE TABLE daily_reports (
    report_date  date        PRIMARY KEY,
    timezone     text        NOT NULL,
    generated_at timestamptz NOT NULL,
    report       jsonb       NOT NULL
);

-- Inserting (schedule_name, scheduled_for) claims a firing; a second replica's insert
-- conflicts and it stands down.
CREATE TABLE schedule_runs (
    schedule_name text        NOT NULL,
    scheduled_for timestamptz NOT NULL,
    leader        text        NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz NULL,
    status        text        NOT NULL DEFAULT 'running'
                              CHECK (status IN ('running', 'done', 'failed')),
    error         text        NULL,
    PRIMARY KEY (schedule_name, scheduled_for)
);

CREATE TABLE audit_log (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id    uuid        NULL REFERENCES users (id) ON DELETE SET NULL,
    action      text        NOT NULL,
    entity_type text        NOT NULL,
    entity_id   text        NOT NULL,
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    request_id  text        NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity_type, entity_id);
CREATE INDEX audit_log_created_at_idx ON audit_log (created_at);
"#;

const DOWN: &str = r#"
DROP TABLE audit_log;
DROP TABLE schedule_runs;
DROP TABLE daily_reports;
"#;

raw_sql_migration!();
