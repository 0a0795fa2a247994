#![allow(clippy::panic)]
//! Every statement the bench declares PREPAREs against the migrated schema: a wrong table,
//! column, type or parameter fails here, by the statement's name.

#[tokio::test]
async fn every_bench_statement_prepares_against_the_schema() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (checked, refused) = orderly_testing::sql::unprepared_statements().await;
    assert!(
        orderly_db::sql::Sql::all().any(|s| s.name == orderly_bench::DRAIN_NOOP.name),
        "the bench's statements are not registered"
    );
    if !refused.is_empty() {
        panic!(
            "{} of {checked} statements do not prepare:\n{}",
            refused.len(),
            refused.join("\n")
        );
    }
}
