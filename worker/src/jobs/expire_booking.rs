//! `expire_booking`: an unpaid booking whose hold ran out gives its seats back.

use orderly_shared::domain::bookings;
use orderly_shared::jobs::{ExpireBooking, JobError};

use super::Handler;
use crate::context::JobContext;

impl Handler for ExpireBooking {
    async fn run(self, ctx: &JobContext, request_id: Option<&str>) -> Result<(), JobError> {
        bookings::expire(&ctx.db, self.booking_id, request_id).await?;
        Ok(())
    }
}
