//! `apply_payment_event`: applies a provider event stored in the webhook inbox. One this
//! version cannot read dies with the reason, to be retried from the dashboard after an
//! upgrade.

use crate::job_error::JobError;
use orderly_domain::payment_events;
use orderly_jobs::ApplyPaymentEvent;
use orderly_providers::stripe::parse_event;

use super::Handler;
use crate::context::JobContext;

impl Handler for ApplyPaymentEvent {
    async fn run(self, ctx: &JobContext, _request_id: Option<&str>) -> Result<(), JobError> {
        payment_events::apply_stored(&ctx.db, &self.event_id, parse_event).await?;
        Ok(())
    }
}
