//! The daily report's e-mails and the report's reads: a `daily_report` notification names
//! the stored report it is rendered from (`report_date`; no other kind names one), one row
//! per admin and run; and the report finds the day's captures and refunds by index instead
//! of reading every payment.

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE notifications
    ADD COLUMN report_date date NULL REFERENCES daily_reports (report_date) ON DELETE CASCADE,
    ADD CONSTRAINT notifications_report_date_check
        CHECK (report_date IS NULL OR kind = 'daily_report');
CREATE INDEX notifications_report_date_idx ON notifications (report_date)
    WHERE report_date IS NOT NULL;
CREATE INDEX payments_captured_at_idx ON payments (captured_at) WHERE captured_at IS NOT NULL;
CREATE INDEX payments_refunded_at_idx ON payments (refunded_at) WHERE refunded_at IS NOT NULL;
"#;

const DOWN: &str = r#"
DROP INDEX payments_refunded_at_idx;
DROP INDEX payments_captured_at_idx;
DELETE FROM notifications WHERE kind = 'daily_report';
ALTER TABLE notifications DROP COLUMN report_date;
"#;

raw_sql_migration!();
