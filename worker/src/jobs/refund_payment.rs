//! `refund_payment`: refunds a cancelled booking's captured payment.

use crate::job_error::JobError;
use orderly_domain::payments;
use orderly_jobs::RefundPayment;

use super::Handler;
use crate::context::JobContext;

impl Handler for RefundPayment {
    async fn run(self, ctx: &JobContext, request_id: Option<&str>) -> Result<(), JobError> {
        let gateway = ctx.providers.payments.as_ref();
        Ok(payments::refund(&ctx.db, gateway, self.booking_id, request_id).await?)
    }
}
