//! `send_email`: delivers one e-mail notification, in a batch with concurrent ones.

use crate::job_error::JobError;
use orderly_domain::notifications;
use orderly_jobs::SendEmail;
use sea_orm::{DatabaseTransaction, DbErr};

use super::Handler;
use crate::context::JobContext;

impl Handler for SendEmail {
    async fn run(self, ctx: &JobContext, _request_id: Option<&str>) -> Result<(), JobError> {
        ctx.deliveries.email(self.notification_id).await
    }

    async fn on_dead(&self, txn: &DatabaseTransaction, error: &str) -> Result<(), DbErr> {
        notifications::give_up(txn, self.notification_id, error).await
    }
}
