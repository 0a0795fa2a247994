//! Delivering a `notifications` row: render it from current state, send it, record it.
//!
//! The row is locked while it is sent, so two runs of the same job take turns, and the
//! second finds it `sent` and does nothing.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use super::messages;
use crate::entities::notifications::{self, NotificationStatus};
use crate::entities::{bookings, listings};
use crate::jobs::JobError;
use crate::providers::ProviderError;
use crate::providers::mail::{Mailer, OutgoingEmail};
use crate::providers::sms::{OutgoingSms, SmsSender};

async fn claim(
    txn: &DatabaseTransaction,
    id: Uuid,
) -> Result<Option<notifications::Model>, JobError> {
    let row = notifications::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| JobError::Permanent(format!("notification {id} does not exist")))?;
    Ok((row.status != NotificationStatus::Sent).then_some(row))
}

async fn context(
    txn: &DatabaseTransaction,
    row: &notifications::Model,
) -> Result<(Option<bookings::Model>, Option<listings::Model>), JobError> {
    let Some(booking_id) = row.booking_id else {
        return Ok((None, None));
    };
    let booking = bookings::Entity::find_by_id(booking_id).one(txn).await?;
    let listing = match &booking {
        Some(b) => listings::Entity::find_by_id(b.listing_id).one(txn).await?,
        None => None,
    };
    Ok((booking, listing))
}

async fn record(
    txn: DatabaseTransaction,
    row: notifications::Model,
    outcome: Result<String, ProviderError>,
) -> Result<(), JobError> {
    let attempts = row.attempts + 1;
    let now = Utc::now();
    let mut active = row.into_active_model();
    active.attempts = Set(attempts);
    active.updated_at = Set(now.into());
    let result = match outcome {
        Ok(provider_id) => {
            active.status = Set(NotificationStatus::Sent);
            active.sent_at = Set(Some(now.into()));
            active.provider_message_id = Set(Some(provider_id));
            active.last_error = Set(None);
            Ok(())
        }
        Err(e) => {
            active.last_error = Set(Some(e.to_string()));
            if matches!(e, ProviderError::Permanent(_)) {
                active.status = Set(NotificationStatus::Failed);
            }
            Err(JobError::from(e))
        }
    };
    active.update(&txn).await?;
    txn.commit().await?;
    result
}

/// The `send_email` job.
pub async fn send_email(
    db: &DatabaseConnection,
    mailer: &dyn Mailer,
    id: Uuid,
) -> Result<(), JobError> {
    let txn = db.begin().await?;
    let Some(row) = claim(&txn, id).await? else {
        return Ok(());
    };
    let (booking, listing) = context(&txn, &row).await?;
    let text = messages::email(row.kind, booking.as_ref(), listing.as_ref());
    let email = OutgoingEmail {
        id,
        to: row.recipient.clone(),
        subject: row.subject.clone().unwrap_or(text.subject),
        body: text.body,
        attachments: Vec::new(),
    };
    let outcome = mailer.send(&email).await;
    record(txn, row, outcome).await
}

/// The `send_sms` job.
pub async fn send_sms(
    db: &DatabaseConnection,
    sender: &dyn SmsSender,
    id: Uuid,
) -> Result<(), JobError> {
    let txn = db.begin().await?;
    let Some(row) = claim(&txn, id).await? else {
        return Ok(());
    };
    let (booking, listing) = context(&txn, &row).await?;
    let sms = OutgoingSms {
        id,
        to: row.recipient.clone(),
        body: messages::sms(row.kind, booking.as_ref(), listing.as_ref()),
    };
    let outcome = sender.send(&sms).await;
    record(txn, row, outcome).await
}
