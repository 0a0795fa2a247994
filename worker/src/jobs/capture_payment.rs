//! `capture_payment`: captures a confirmed booking's payment (idempotency key per booking).

use orderly_shared::domain::payments;
use orderly_shared::jobs::{CapturePayment, JobError};

use crate::context::JobContext;

pub async fn run(
    ctx: &JobContext,
    job: CapturePayment,
    request_id: Option<&str>,
) -> Result<(), JobError> {
    payments::capture(
        &ctx.db,
        ctx.providers.payments.as_ref(),
        job.booking_id,
        request_id,
    )
    .await
}
