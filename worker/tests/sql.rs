//! Every hand-written statement of the API, the worker, the scheduler and the shared crates
//! PREPAREs against the migrated schema: a wrong table, column, type or parameter fails
//! here, by the statement's name.

// Linked for the statements they register.
use orderly_api as _;
use orderly_scheduler as _;
use orderly_worker as _;

#[tokio::test]
async fn every_statement_prepares_against_the_schema() {
    orderly_testing::sql::assert_every_statement_prepares().await;
}
