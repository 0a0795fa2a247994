//! Sessions of the `/admin` dashboard: a random token in an `HttpOnly` cookie, stored here
//! only as its SHA-256, with an idle and an absolute expiry. Deleting a user (or logging
//! out) ends its sessions.

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE admin_sessions (
    token_hash      text        PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Pushed forward by activity, never past expires_at.
    idle_expires_at timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    CHECK (idle_expires_at <= expires_at)
);
CREATE INDEX admin_sessions_user_id_idx ON admin_sessions (user_id);
CREATE INDEX admin_sessions_expires_at_idx ON admin_sessions (expires_at);
"#;

const DOWN: &str = r#"
DROP TABLE admin_sessions;
"#;

raw_sql_migration!();
