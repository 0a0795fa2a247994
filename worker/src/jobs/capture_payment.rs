//! `capture_payment`: captures a confirmed booking's payment (idempotency key per booking).

use crate::job_error::JobError;
use orderly_domain::payments;
use orderly_jobs::CapturePayment;

use super::Handler;
use crate::context::JobContext;

impl Handler for CapturePayment {
    async fn run(self, ctx: &JobContext, request_id: Option<&str>) -> Result<(), JobError> {
        let gateway = ctx.providers.payments.as_ref();
        Ok(payments::capture(&ctx.db, gateway, self.booking_id, request_id).await?)
    }
}
