//! `create_payment`: creates the payment the booking request could not.

use orderly_shared::domain::payments;
use orderly_shared::jobs::{CreatePayment, JobError};

use crate::context::JobContext;

pub async fn run(
    ctx: &JobContext,
    job: CreatePayment,
    request_id: Option<&str>,
) -> Result<(), JobError> {
    payments::create_at_provider(
        &ctx.db,
        ctx.providers.payments.as_ref(),
        job.booking_id,
        request_id,
    )
    .await
}
