//! `reminders`: a scheduler tick asks for the reminders of bookings whose listing starts
//! within the lead; each booking is reminded once, however many ticks ask.

use crate::job_error::JobError;
use orderly_domain::reminders;
use orderly_jobs::Reminders;

use super::Handler;
use crate::context::JobContext;

impl Handler for Reminders {
    async fn run(self, ctx: &JobContext, _request_id: Option<&str>) -> Result<(), JobError> {
        let asked = reminders::ask_due(
            &ctx.db,
            self.until(),
            reminders::BATCH,
            reminders::MOST_PER_RUN,
        )
        .await?;
        if asked > 0 {
            tracing::info!(bookings = asked, "reminders asked for");
        }
        Ok(())
    }
}
