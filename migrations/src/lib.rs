//! Orderly's database schema as SeaORM migrations, applied in order by `orderly-migrate`.
//!
//! The schema is written as raw PostgreSQL DDL so that constraints, partial indexes and
//! triggers read exactly as the database sees them. Migrations run once as a release step,
//! never silently at every boot.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::{MigrationTrait, async_trait::async_trait};

/// Implements `MigrationTrait` for a migration module's `Migration` from its `UP` and
/// `DOWN` SQL (each run as one multi-statement batch).
macro_rules! raw_sql_migration {
    () => {
        #[sea_orm_migration::async_trait::async_trait]
        impl sea_orm_migration::MigrationTrait for Migration {
            async fn up(
                &self,
                manager: &sea_orm_migration::SchemaManager,
            ) -> Result<(), sea_orm_migration::DbErr> {
                use sea_orm_migration::prelude::ConnectionTrait;
                manager.get_connection().execute_unprepared(UP).await?;
                Ok(())
            }

            async fn down(
                &self,
                manager: &sea_orm_migration::SchemaManager,
            ) -> Result<(), sea_orm_migration::DbErr> {
                use sea_orm_migration::prelude::ConnectionTrait;
                manager.get_connection().execute_unprepared(DOWN).await?;
                Ok(())
            }
        }
    };
}

mod m20261121_000001_users_and_auth;
mod m20261121_000002_listings;
mod m20261121_000003_bookings_and_payments;
mod m20261121_000004_jobs_and_outbox;
mod m20261121_000005_reports_schedules_audit;
mod m20261121_000006_users_email_index;
mod m20261202_000007_pipeline_leases;
mod m20261203_000008_outbox_pending_index;
mod m20261203_000009_stripe_payments;
mod m20261210_000010_report_notifications;
mod m20261210_000011_scheduler;
mod m20261210_000012_admin_queues;
mod m20261211_000013_admin_sessions;
mod m20261212_000014_outbox_wake_after_commit;
mod m20261214_000015_money;

/// Every migration of the schema, oldest first.
pub struct Migrator;

#[async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_users_and_auth::Migration),
            Box::new(m20261121_000002_listings::Migration),
            Box::new(m20261121_000003_bookings_and_payments::Migration),
            Box::new(m20261121_000004_jobs_and_outbox::Migration),
            Box::new(m20261121_000005_reports_schedules_audit::Migration),
            Box::new(m20261121_000006_users_email_index::Migration),
            Box::new(m20261202_000007_pipeline_leases::Migration),
            Box::new(m20261203_000008_outbox_pending_index::Migration),
            Box::new(m20261203_000009_stripe_payments::Migration),
            Box::new(m20261210_000010_report_notifications::Migration),
            Box::new(m20261210_000011_scheduler::Migration),
            Box::new(m20261210_000012_admin_queues::Migration),
            Box::new(m20261211_000013_admin_sessions::Migration),
            Box::new(m20261212_000014_outbox_wake_after_commit::Migration),
            Box::new(m20261214_000015_money::Migration),
        ]
    }
}
