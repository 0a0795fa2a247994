//! Every statement the bench declares PREPAREs against the migrated schema: a wrong table,
//! column, type or parameter fails here, by the statement's name.

#[tokio::test]
async fn every_bench_statement_prepares_against_the_schema() {
    orderly_testing::sql::assert_every_statement_prepares().await;
    assert!(
        orderly_db::sql::Sql::all().any(|s| s.name == orderly_bench::DRAIN_NOOP.name),
        "the bench's statements are not registered"
    );
}
