//! `capture_payment`: captures a confirmed booking's payment (idempotency key per booking).

use orderly_shared::domain::payments;
use orderly_shared::jobs::{CapturePayment, JobError};

use super::Handler;
use crate::context::JobContext;

impl Handler for CapturePayment {
    async fn run(self, ctx: &JobContext, request_id: Option<&str>) -> Result<(), JobError> {
        let gateway = ctx.providers.payments.as_ref();
        Ok(payments::capture(&ctx.db, gateway, self.booking_id, request_id).await?)
    }
}
