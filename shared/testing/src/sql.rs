//! Checks hand-written SQL against the migrated schema.

use sea_orm::{ConnectionTrait, Database};

use orderly_db::sql::Sql;

/// PREPAREs every statement registered with `orderly_db::sql!` in the crates linked into the
/// calling test against a fresh database cloned from the migrated template, and returns the
/// ones PostgreSQL refused (a table, column or type that is not there, parameters whose
/// types cannot be told), each as `name: error`. Also returns how many it checked.
pub async fn unprepared_statements() -> (usize, Vec<String>) {
    let url = crate::create_test_database(&crate::test_id()).await;
    let db = Database::connect(&url).await.expect("test database");
    let mut statements: Vec<&Sql> = Sql::all().collect();
    statements.sort_by_key(|s| s.name);
    let mut refused = Vec::new();
    for (i, sql) in statements.iter().enumerate() {
        let name = format!("checked_{i}");
        // One round trip, so both run on the same pooled connection.
        let check = format!("PREPARE {name} AS {};\nDEALLOCATE {name}", sql.text);
        if let Err(e) = db.execute_unprepared(&check).await {
            refused.push(format!("{}: {e}", sql.name));
        }
    }
    db.close().await.expect("closing the test database");
    (statements.len(), refused)
}

/// Fails the calling test, naming each statement, unless every registered statement
/// PREPAREs (see [`unprepared_statements`]). Returns how many were checked.
pub async fn assert_every_statement_prepares() -> usize {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (checked, refused) = unprepared_statements().await;
    assert!(checked > 0, "no statement is registered");
    assert!(
        refused.is_empty(),
        "{} of {checked} statements do not prepare:\n{}",
        refused.len(),
        refused.join("\n")
    );
    checked
}
