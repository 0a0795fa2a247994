//! `sweep`: a scheduler tick expires unpaid bookings whose `expire_booking` job was lost or
//! is far behind, and reports bookings stuck `confirmed` without a capture job.

use crate::job_error::JobError;
use orderly_domain::sweep;
use orderly_jobs::Sweep;

use super::Handler;
use crate::context::JobContext;

impl Handler for Sweep {
    async fn run(self, ctx: &JobContext, _request_id: Option<&str>) -> Result<(), JobError> {
        let swept = sweep::sweep(&ctx.db, ctx.providers.payments.as_ref()).await?;
        metrics::gauge!("bookings_stuck_confirmed").set(swept.stuck_confirmed as f64);
        if swept.expired > 0 {
            tracing::warn!(
                bookings.expired = swept.expired,
                "the sweep expired bookings whose expire_booking job was late or lost"
            );
        }
        if swept.stuck_confirmed > 0 {
            tracing::warn!(
                bookings.stuck = swept.stuck_confirmed,
                booking.ids = ?swept.stuck_sample,
                "bookings stuck confirmed with no live capture job"
            );
        }
        Ok(())
    }
}
