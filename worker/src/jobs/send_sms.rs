//! `send_sms`: delivers one SMS notification, in a batch with concurrent ones.

use orderly_shared::jobs::{JobError, SendSms};

use crate::context::JobContext;

pub async fn run(ctx: &JobContext, job: SendSms) -> Result<(), JobError> {
    ctx.deliveries.sms(job.notification_id).await
}
