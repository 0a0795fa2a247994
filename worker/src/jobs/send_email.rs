//! `send_email`: delivers one e-mail notification, in a batch with concurrent ones.

use orderly_shared::jobs::{JobError, SendEmail};

use crate::context::JobContext;

pub async fn run(ctx: &JobContext, job: SendEmail) -> Result<(), JobError> {
    ctx.deliveries.email(job.notification_id).await
}
