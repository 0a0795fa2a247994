//! Accounts and what authenticates them: users, rotating refresh tokens, and the
//! per-user `Idempotency-Key` records that let a retried `POST` replay its first answer.
//! Also defines `orderly_touch_updated_at()`, the trigger function later tables reuse.

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
-- Keeps updated_at honest when a writer forgets to set it; an explicit new value wins.
CREATE FUNCTION orderly_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    password_hash text        NOT NULL,
    name          text        NOT NULL,
    phone         text        NULL CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),
    role          text        NOT NULL CHECK (role IN ('customer', 'provider', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION orderly_touch_updated_at();

-- One row per issued refresh token; a family is one login's rotation chain, and using a
-- token that was already used revokes the whole family.
CREATE TABLE refresh_tokens (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid        NOT NULL,
    token_hash  text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz NULL,
    revoked_at  timestamptz NULL,
    replaced_by uuid        NULL REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);

-- response_status and response_body stay NULL while the first request is in flight.
CREATE TABLE idempotency_keys (
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    method          text        NOT NULL,
    path            text        NOT NULL,
    request_hash    text        NOT NULL,
    response_status smallint    NULL CHECK (response_status BETWEEN 100 AND 599),
    response_body   bytea       NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (user_id, key),
    CHECK (response_body IS NULL OR response_status IS NOT NULL)
);
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);
"#;

const DOWN: &str = r#"
DROP TABLE idempotency_keys;
DROP TABLE refresh_tokens;
DROP TABLE users;
DROP FUNCTION orderly_touch_updated_at();
"#;

raw_sql_migration!();
