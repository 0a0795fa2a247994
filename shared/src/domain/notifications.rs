//! Messages to customers: a `notifications` row first, then a job that sends it.
//!
//! The row's `dedup_key` (booking, channel, kind) makes each message exist once, however
//! often the code that asks for it runs.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr, Statement};
use uuid::Uuid;

use crate::entities::notifications::{NotificationChannel, NotificationKind};
use crate::entities::users;
use crate::jobs::{SendEmail, SendSms, outbox};

/// Asks for `kind` to be sent to `user` about `booking_id` on `channel`, if it was not
/// asked for before. Does nothing for SMS when the user gave no phone number.
pub async fn notify(
    db: &impl ConnectionTrait,
    booking_id: Uuid,
    user: &users::Model,
    channel: NotificationChannel,
    kind: NotificationKind,
    request_id: Option<&str>,
) -> Result<(), DbErr> {
    let recipient = match channel {
        NotificationChannel::Email => user.email.clone(),
        NotificationChannel::Sms => match &user.phone {
            Some(phone) => phone.clone(),
            None => return Ok(()),
        },
    };
    let dedup_key = format!(
        "booking:{booking_id}:{}:{}",
        channel.as_str(),
        kind.as_str()
    );
    let id = Uuid::now_v7();
    let now = Utc::now();
    let inserted = db
        .execute_raw(Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "INSERT INTO notifications (id, dedup_key, booking_id, user_id, channel, kind, recipient, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (dedup_key) DO NOTHING",
            vec![
                id.into(),
                dedup_key.into(),
                booking_id.into(),
                user.id.into(),
                channel.as_str().into(),
                kind.as_str().into(),
                recipient.into(),
                now.into(),
            ],
        ))
        .await?
        .rows_affected()
        == 1;
    if inserted {
        match channel {
            NotificationChannel::Email => {
                outbox::enqueue(
                    db,
                    &SendEmail {
                        notification_id: id,
                    },
                    None,
                    request_id,
                )
                .await?;
            }
            NotificationChannel::Sms => {
                outbox::enqueue(
                    db,
                    &SendSms {
                        notification_id: id,
                    },
                    None,
                    request_id,
                )
                .await?;
            }
        }
    }
    Ok(())
}
