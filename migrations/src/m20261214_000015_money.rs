//! Money kept true to the provider: every refund as a row of its own (ours, or one made in
//! the provider's dashboard, in full or in part) so the daily report counts it on its day;
//! disputes recorded on the payment; the webhook inbox (a verified event is stored whole and
//! applied by a job); and the reconciliation's record of what disagreed and what was done.

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE payment_refunds (
    -- The provider's refund id (`re_...`), or the event or reconciliation that saw it.
    id           text        PRIMARY KEY,
    payment_id   uuid        NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
    amount_cents bigint      NOT NULL CHECK (amount_cents > 0),
    currency     text        NOT NULL,
    -- `orderly` (a refund_payment job) or `provider` (seen in an event or a reconciliation).
    source       text        NOT NULL CHECK (source IN ('orderly', 'provider')),
    refunded_at  timestamptz NOT NULL
);
CREATE INDEX payment_refunds_refunded_at_idx ON payment_refunds (refunded_at);
CREATE INDEX payment_refunds_payment_id_idx ON payment_refunds (payment_id);
INSERT INTO payment_refunds (id, payment_id, amount_cents, currency, source, refunded_at)
SELECT 'migrated-' || id, id, amount_refunded_cents, currency, 'orderly', refunded_at
  FROM payments
 WHERE refunded_at IS NOT NULL AND amount_refunded_cents > 0;

ALTER TABLE payments
    ADD COLUMN disputed_at    timestamptz,
    ADD COLUMN dispute_reason text,
    -- When the reconciliation last compared it with the provider (it takes the oldest first).
    ADD COLUMN reconciled_at  timestamptz;

ALTER TABLE processed_webhook_events
    ADD COLUMN payload    text,
    ADD COLUMN applied_at timestamptz;
UPDATE processed_webhook_events SET applied_at = received_at;

CREATE TABLE payment_repairs (
    id          uuid        PRIMARY KEY,
    booking_id  uuid        NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    -- What disagreed with the provider, in a word (`captured_but_cancelled`, ...).
    mismatch    text        NOT NULL,
    -- What was done about it, in a sentence.
    action      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_repairs_created_at_idx ON payment_repairs (created_at DESC);
CREATE INDEX payment_repairs_booking_id_idx ON payment_repairs (booking_id);
"#;

const DOWN: &str = r#"
DROP TABLE payment_repairs;
ALTER TABLE processed_webhook_events DROP COLUMN applied_at, DROP COLUMN payload;
ALTER TABLE payments DROP COLUMN reconciled_at, DROP COLUMN dispute_reason, DROP COLUMN disputed_at;
DROP TABLE payment_refunds;
"#;

raw_sql_migration!();
