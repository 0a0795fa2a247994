//! `refund_payment`: refunds a cancelled booking's captured payment.

use orderly_shared::domain::payments;
use orderly_shared::jobs::{JobError, RefundPayment};

use crate::context::JobContext;

pub async fn run(
    ctx: &JobContext,
    job: RefundPayment,
    request_id: Option<&str>,
) -> Result<(), JobError> {
    payments::refund(
        &ctx.db,
        ctx.providers.payments.as_ref(),
        job.booking_id,
        request_id,
    )
    .await
}
