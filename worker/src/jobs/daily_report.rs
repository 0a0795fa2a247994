//! `daily_report`: computes, stores and e-mails one day's report.

use crate::job_error::JobError;
use orderly_domain::reports;
use orderly_jobs::DailyReport;

use super::Handler;
use crate::context::JobContext;

impl Handler for DailyReport {
    async fn run(self, ctx: &JobContext, request_id: Option<&str>) -> Result<(), JobError> {
        reports::run(&ctx.db, &ctx.reports, &self, request_id).await?;
        Ok(())
    }
}
