//! What job handlers are given: the database, the provider clients and the process's runs.

use orderly_jobs::RetryPolicy;
use orderly_providers::Providers;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

/// Overrides of every job type's retry policy (operators' and tests' knobs).
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyOverrides {
    /// `JOB_RETRY_BASE_DELAY_MS`: the first retry delay (delays still double).
    pub base_delay: Option<std::time::Duration>,
    /// `JOB_MAX_ATTEMPTS`: attempts in all.
    pub max_attempts: Option<u32>,
}

impl PolicyOverrides {
    /// `policy` with these overrides applied.
    pub fn apply(&self, mut policy: RetryPolicy) -> RetryPolicy {
        if let Some(base) = self.base_delay {
            policy.base_delay = base;
        }
        if let Some(max) = self.max_attempts {
            policy.max_attempts = max.max(1);
        }
        policy
    }
}

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
