//! What job handlers are given: the database and the provider clients.

use orderly_shared::providers::Providers;
use sea_orm::DatabaseConnection;

/// Dependencies of every job handler.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// PostgreSQL.
    pub db: DatabaseConnection,
    /// Payments, mail, SMS.
    pub providers: Providers,
    /// Where successful ends are recorded, in batches.
    pub completions: crate::completions::Completions,
    /// E-mails and text messages, delivered in batches.
    pub deliveries: crate::deliveries::Deliveries,
    /// When set, the first retry delay of every job type (`JOB_RETRY_BASE_DELAY_MS`).
    pub retry_base_delay: Option<std::time::Duration>,
}
