//! `orderly-migrate`: applies, rolls back and reports the schema migrations
//! (`up`, `down`, `status`, `fresh`, ...) against `DATABASE_URL`.

#[tokio::main]
async fn main() {
    // One TLS crypto provider for the whole process; an error only means one is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    sea_orm_migration::cli::run_cli(orderly_migrations::Migrator).await;
}
