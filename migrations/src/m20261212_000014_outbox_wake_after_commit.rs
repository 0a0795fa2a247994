//! The relays are woken after a commit, not by it: the `NOTIFY` that every transaction
//! writing outbox rows sent from a trigger made PostgreSQL commit those transactions one at
//! a time (see `orderly_jobs::wake`).

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION orderly_outbox_notify();
"#;

const DOWN: &str = r#"
CREATE FUNCTION orderly_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NOTIFY orderly_outbox;
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION orderly_outbox_notify();
"#;

raw_sql_migration!();
