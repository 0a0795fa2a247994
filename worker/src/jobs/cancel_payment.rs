//! `cancel_payment`: cancels a payment that was never captured.

use orderly_shared::domain::payments;
use orderly_shared::jobs::{CancelPayment, JobError};

use crate::context::JobContext;

pub async fn run(ctx: &JobContext, job: CancelPayment) -> Result<(), JobError> {
    payments::cancel(&ctx.db, ctx.providers.payments.as_ref(), job.booking_id).await
}
