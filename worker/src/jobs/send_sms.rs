//! `send_sms`: delivers one SMS notification.

use orderly_shared::domain::delivery;
use orderly_shared::jobs::{JobError, SendSms};

use crate::context::JobContext;

pub async fn run(ctx: &JobContext, job: SendSms) -> Result<(), JobError> {
    delivery::send_sms(&ctx.db, ctx.providers.sms.as_ref(), job.notification_id).await
}
