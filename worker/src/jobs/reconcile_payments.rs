//! `reconcile_payments`: a scheduler tick compares bookings with the payment provider and
//! repairs what disagrees (see `orderly_domain::reconcile`).

use crate::job_error::JobError;
use orderly_domain::reconcile;
use orderly_jobs::ReconcilePayments;

use super::Handler;
use crate::context::JobContext;

impl Handler for ReconcilePayments {
    async fn run(self, ctx: &JobContext, _request_id: Option<&str>) -> Result<(), JobError> {
        let gateway = ctx.providers.payments.as_ref();
        let done = reconcile::reconcile(&ctx.db, gateway).await?;
        if done.repaired > 0 {
            tracing::warn!(
                bookings.checked = done.checked,
                bookings.repaired = done.repaired,
                "the reconciliation repaired bookings that disagreed with the payment provider"
            );
        }
        Ok(())
    }
}
