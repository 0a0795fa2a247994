//! `cancel_payment`: cancels a payment that was never captured.

use crate::job_error::JobError;
use orderly_domain::payments;
use orderly_jobs::CancelPayment;

use super::Handler;
use crate::context::JobContext;

impl Handler for CancelPayment {
    async fn run(self, ctx: &JobContext, _request_id: Option<&str>) -> Result<(), JobError> {
        let gateway = ctx.providers.payments.as_ref();
        Ok(payments::cancel(&ctx.db, gateway, self.booking_id).await?)
    }
}
