//! `expire_booking`: an unpaid booking whose hold ran out gives its seats back, unless the
//! payment provider shows it was paid at the last moment (then it is confirmed).

use crate::job_error::JobError;
use orderly_domain::payments;
use orderly_jobs::ExpireBooking;

use super::Handler;
use crate::context::JobContext;

impl Handler for ExpireBooking {
    async fn run(self, ctx: &JobContext, request_id: Option<&str>) -> Result<(), JobError> {
        let gateway = ctx.providers.payments.as_ref();
        payments::expire_unless_paid(&ctx.db, gateway, self.booking_id, request_id).await?;
        Ok(())
    }
}
