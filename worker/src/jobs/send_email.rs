//! `send_email`: delivers one e-mail notification.

use orderly_shared::domain::delivery;
use orderly_shared::jobs::{JobError, SendEmail};

use crate::context::JobContext;

pub async fn run(ctx: &JobContext, job: SendEmail) -> Result<(), JobError> {
    delivery::send_email(&ctx.db, ctx.providers.mail.as_ref(), job.notification_id).await
}
