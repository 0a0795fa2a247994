//! `expire_booking`: an unpaid booking whose hold ran out gives its seats back.

use orderly_shared::domain::bookings;
use orderly_shared::jobs::{ExpireBooking, JobError};

use crate::context::JobContext;

pub async fn run(
    ctx: &JobContext,
    job: ExpireBooking,
    request_id: Option<&str>,
) -> Result<(), JobError> {
    bookings::expire(&ctx.db, job.booking_id, request_id).await?;
    Ok(())
}
