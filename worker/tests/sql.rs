#![allow(clippy::panic)]
//! Every hand-written statement of the API, the worker, the scheduler and the shared crates
//! PREPAREs against the migrated schema: a wrong table, column, type or parameter fails
//! here, by the statement's name.

// Linked for the statements they register.
use orderly_api as _;
use orderly_scheduler as _;
use orderly_worker as _;

#[tokio::test]
async fn every_statement_prepares_against_the_schema() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (checked, refused) = orderly_testing::sql::unprepared_statements().await;
    assert!(checked > 0, "no statement is registered");
    if !refused.is_empty() {
        panic!(
            "{} of {checked} statements do not prepare:\n{}",
            refused.len(),
            refused.join("\n")
        );
    }
}
