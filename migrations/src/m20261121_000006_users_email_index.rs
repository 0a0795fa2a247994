//! Login looks users up by `email = $1`; an index on `lower(email)` cannot serve that, so
//! every login scanned the table. `email` is already checked to be lower case, so a plain
//! unique index keeps the same rule and serves the lookup.

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (email);
"#;

const DOWN: &str = r#"
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
"#;

raw_sql_migration!();
