//! Bookings (the orders frontends post), their payments, and the Stripe webhook events
//! already handled, so that a redelivered event changes nothing.

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE bookings (
    id              uuid        PRIMARY KEY,
    listing_id      uuid        NOT NULL REFERENCES listings (id) ON DELETE RESTRICT,
    customer_id     uuid        NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    quantity        integer     NOT NULL CHECK (quantity BETWEEN 1 AND 20),
    amount_cents    bigint      NOT NULL CHECK (amount_cents >= 0),
    currency        text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    status          text        NOT NULL CHECK (status IN (
                        'pending_payment', 'confirmed', 'paid',
                        'expired', 'cancelled', 'refunded')),
    hold_expires_at timestamptz NOT NULL,
    idempotency_key text        NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    request_id      text        NULL,
    confirmed_at    timestamptz NULL,
    paid_at         timestamptz NULL,
    expired_at      timestamptz NULL,
    cancelled_at    timestamptz NULL,
    refunded_at     timestamptz NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bookings_customer_id_idempotency_key_key UNIQUE (customer_id, idempotency_key)
);
CREATE INDEX bookings_listing_id_status_idx ON bookings (listing_id, status);
CREATE INDEX bookings_customer_id_created_at_idx ON bookings (customer_id, created_at DESC);
CREATE INDEX bookings_created_at_idx ON bookings (created_at);
-- The expiry sweep's work list: only unpaid holds.
CREATE INDEX bookings_pending_hold_expires_at_idx ON bookings (hold_expires_at)
    WHERE status = 'pending_payment';
CREATE TRIGGER bookings_touch_updated_at BEFORE UPDATE ON bookings
    FOR EACH ROW EXECUTE FUNCTION orderly_touch_updated_at();

-- One payment per booking. Amounts only ever move within what was authorised.
CREATE TABLE payments (
    id                    uuid        PRIMARY KEY,
    booking_id            uuid        NOT NULL UNIQUE REFERENCES bookings (id) ON DELETE CASCADE,
    provider              text        NOT NULL CHECK (provider IN ('stripe', 'simulated')),
    provider_payment_id   text        NULL UNIQUE,
    status                text        NOT NULL CHECK (status IN (
                              'creating', 'requires_payment', 'authorized', 'captured',
                              'cancelled', 'refunded', 'failed')),
    amount_cents          bigint      NOT NULL CHECK (amount_cents >= 0),
    currency              text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    client_secret         text        NULL,
    amount_captured_cents bigint      NOT NULL DEFAULT 0,
    amount_refunded_cents bigint      NOT NULL DEFAULT 0,
    captured_at           timestamptz NULL,
    cancelled_at          timestamptz NULL,
    refunded_at           timestamptz NULL,
    last_error            text        NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_amount_captured_cents_check
        CHECK (amount_captured_cents BETWEEN 0 AND amount_cents),
    CONSTRAINT payments_amount_refunded_cents_check
        CHECK (amount_refunded_cents BETWEEN 0 AND amount_captured_cents)
);
CREATE TRIGGER payments_touch_updated_at BEFORE UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION orderly_touch_updated_at();

CREATE TABLE processed_webhook_events (
    event_id    text        PRIMARY KEY,
    event_type  text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
"#;

const DOWN: &str = r#"
DROP TABLE processed_webhook_events;
DROP TABLE payments;
DROP TABLE bookings;
"#;

raw_sql_migration!();
