//! `expire_booking`: an unpaid booking whose hold ran out gives its seats back, unless the
//! payment provider shows it was paid at the last moment (then it is confirmed).

use orderly_shared::domain::payments;
use orderly_shared::jobs::{ExpireBooking, JobError};

use super::Handler;
use crate::context::JobContext;

impl Handler for ExpireBooking {
    async fn run(self, ctx: &JobContext, request_id: Option<&str>) -> Result<(), JobError> {
        let gateway = ctx.providers.payments.as_ref();
        payments::expire_unless_paid(&ctx.db, gateway, self.booking_id, request_id).await?;
        Ok(())
    }
}
