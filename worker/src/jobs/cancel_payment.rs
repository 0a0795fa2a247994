//! `cancel_payment`: cancels a payment that was never captured.

use orderly_shared::domain::payments;
use orderly_shared::jobs::{CancelPayment, JobError};

use super::Handler;
use crate::context::JobContext;

impl Handler for CancelPayment {
    async fn run(self, ctx: &JobContext, _request_id: Option<&str>) -> Result<(), JobError> {
        let gateway = ctx.providers.payments.as_ref();
        Ok(payments::cancel(&ctx.db, gateway, self.booking_id).await?)
    }
}
