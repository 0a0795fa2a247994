//! What job handlers are given: the database, the provider clients and the process's runs.

use orderly_jobs::PolicyOverrides;
use orderly_providers::Providers;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

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
    /// The runs this process holds (their fence and lease).
    pub runs: crate::runs::Runs,
    /// Overrides of the retry policies.
    pub policies: PolicyOverrides,
    /// The report time zone and the report's recipients.
    pub reports: orderly_domain::reports::ReportSettings,
    /// Cancelled when the process stops: waits for the database give up.
    pub stopping: CancellationToken,
}
