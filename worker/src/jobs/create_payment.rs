//! `create_payment`: creates the payment the booking request could not.

use crate::job_error::JobError;
use orderly_domain::payments;
use orderly_jobs::CreatePayment;

use super::Handler;
use crate::context::JobContext;

impl Handler for CreatePayment {
    async fn run(self, ctx: &JobContext, request_id: Option<&str>) -> Result<(), JobError> {
        let gateway = ctx.providers.payments.as_ref();
        Ok(payments::create_at_provider(&ctx.db, gateway, self.booking_id, request_id).await?)
    }
}
