//! The durable side of background work: the outbox (the record of every job, written in
//! the same transaction as the domain rows; Redis is only the transport) with the trigger
//! that wakes the relay, and the notifications that jobs send, one per booking, kind and
//! channel.

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
-- status: pending (not yet in Redis) -> enqueued (pushed; lease_until says when to push
-- again if no completion was reported) -> done | dead.
CREATE TABLE outbox (
    id           uuid        PRIMARY KEY,
    queue        text        NOT NULL CHECK (queue IN ('email', 'sms', 'payments', 'bookings', 'reports')),
    job_type     text        NOT NULL CHECK (job_type <> ''),
    payload      jsonb       NOT NULL,
    task_id      text        NOT NULL UNIQUE CHECK (task_id <> ''),
    run_at       timestamptz NOT NULL DEFAULT now(),
    request_id   text        NULL,
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'enqueued', 'done', 'dead')),
    attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    lease_until  timestamptz NULL,
    enqueued_at  timestamptz NULL,
    completed_at timestamptz NULL,
    last_error   text        NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_pending_run_at_idx ON outbox (run_at) WHERE status = 'pending';
CREATE INDEX outbox_enqueued_lease_until_idx ON outbox (lease_until) WHERE status = 'enqueued';
CREATE INDEX outbox_queue_status_idx ON outbox (queue, status);
CREATE TRIGGER outbox_touch_updated_at BEFORE UPDATE ON outbox
    FOR EACH ROW EXECUTE FUNCTION orderly_touch_updated_at();

-- NOTIFY is delivered when the inserting transaction commits, and never if it rolls back,
-- so the relay wakes exactly when there is committed work.
CREATE FUNCTION orderly_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NOTIFY orderly_outbox;
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION orderly_outbox_notify();

-- dedup_key (e.g. 'booking:<id>:email:booking_confirmed') makes a message unique per
-- booking, kind and channel, so a retried job finds the row instead of sending again.
CREATE TABLE notifications (
    id                  uuid        PRIMARY KEY,
    dedup_key           text        NOT NULL UNIQUE,
    booking_id          uuid        NULL REFERENCES bookings (id) ON DELETE CASCADE,
    user_id             uuid        NULL REFERENCES users (id) ON DELETE SET NULL,
    channel             text        NOT NULL CHECK (channel IN ('email', 'sms')),
    kind                text        NOT NULL CHECK (kind IN (
                            'booking_confirmed', 'payment_receipt', 'hold_expired',
                            'booking_cancelled', 'booking_refunded', 'reminder',
                            'daily_report')),
    recipient           text        NOT NULL,
    subject             text        NULL,
    status              text        NOT NULL DEFAULT 'pending'
                                    CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts            integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error          text        NULL,
    provider_message_id text        NULL,
    sent_at             timestamptz NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_booking_id_idx ON notifications (booking_id);
CREATE TRIGGER notifications_touch_updated_at BEFORE UPDATE ON notifications
    FOR EACH ROW EXECUTE FUNCTION orderly_touch_updated_at();
"#;

const DOWN: &str = r#"
DROP TABLE notifications;
DROP TABLE outbox;
DROP FUNCTION orderly_outbox_notify();
"#;

raw_sql_migration!();
