//! Payments at a provider that can fail halfway: `provider_attempts` counts the calls of the
//! current step whose outcome was never known (a 5xx, a lost answer). Stripe stores the
//! first answer under an idempotency key, a 500 included, and replays it for 24 h, so after
//! such a call the next one reads the PaymentIntent first and moves to a new key
//! (`…-capture-2`) only when its state proves the earlier call did nothing. The customer is
//! now told when a payment attempt fails (`payment_failed`).

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE payments
    ADD COLUMN provider_attempts integer NOT NULL DEFAULT 0 CHECK (provider_attempts >= 0);
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN (
    'booking_confirmed', 'payment_receipt', 'payment_failed', 'hold_expired',
    'booking_cancelled', 'booking_refunded', 'reminder', 'daily_report'));
"#;

const DOWN: &str = r#"
DELETE FROM notifications WHERE kind = 'payment_failed';
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN (
    'booking_confirmed', 'payment_receipt', 'hold_expired',
    'booking_cancelled', 'booking_refunded', 'reminder', 'daily_report'));
ALTER TABLE payments DROP COLUMN provider_attempts;
"#;

raw_sql_migration!();
