//! Messages to customers: a `notifications` row first, then a job that sends it.
//!
//! The row's `dedup_key` (booking, channel, kind) makes each message exist once, however
//! often the code that asks for it runs.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use uuid::Uuid;

use orderly_db::notifications::{self, NotificationChannel, NotificationKind, NotificationStatus};
use orderly_db::sql::stmt;
use orderly_db::{quoted, sql};
use orderly_jobs::outbox::{self, NewJob};
use orderly_jobs::{SendEmail, SendSms};

/// Asks for `kind` to be sent to user `user_id` about `booking_id` on `channel`, if it was
/// not asked for before. Does nothing for SMS when the user gave no phone number.
pub async fn notify(
    db: &impl ConnectionTrait,
    booking_id: Uuid,
    user_id: Uuid,
    channel: NotificationChannel,
    kind: NotificationKind,
    request_id: Option<&str>,
) -> Result<(), DbErr> {
    ask(db, booking_id, user_id, &[(channel, kind)], &[], request_id).await?;
    Ok(())
}

/// Writes, in one statement, the `notifications` rows of `wanted` (channel, kind) messages
/// to user `user_id` about `booking_id` (addressed to the user's e-mail or phone number),
/// the jobs that send them, and the caller's `also` jobs. A message asked for before is
/// skipped, as is SMS to a user without a phone number (and so are their jobs). Returns the
/// new rows.
pub async fn ask(
    db: &impl ConnectionTrait,
    booking_id: Uuid,
    user_id: Uuid,
    wanted: &[(NotificationChannel, NotificationKind)],
    also: &[NewJob],
    request_id: Option<&str>,
) -> Result<Vec<notifications::Model>, DbErr> {
    let ids: Vec<Uuid> = wanted.iter().map(|_| Uuid::now_v7()).collect();
    let keys: Vec<String> = wanted
        .iter()
        .map(|(channel, kind)| {
            format!(
                "booking:{booking_id}:{}:{}",
                channel.as_str(),
                kind.as_str()
            )
        })
        .collect();
    let channels: Vec<String> = wanted.iter().map(|(c, _)| c.as_str().to_owned()).collect();
    let kinds: Vec<String> = wanted.iter().map(|(_, k)| k.as_str().to_owned()).collect();
    let mut jobs = Vec::with_capacity(wanted.len() + also.len());
    let mut about = Vec::with_capacity(jobs.capacity());
    for (&id, (channel, _)) in ids.iter().zip(wanted) {
        jobs.push(match channel {
            NotificationChannel::Email => NewJob::of(
                &SendEmail {
                    notification_id: id,
                },
                None,
                request_id,
            )?,
            NotificationChannel::Sms => NewJob::of(
                &SendSms {
                    notification_id: id,
                },
                None,
                request_id,
            )?,
        });
        about.push(Some(id));
    }
    jobs.extend_from_slice(also);
    let values: Vec<sea_orm::Value> = vec![
        ids.into(),
        keys.into(),
        channels.into(),
        kinds.into(),
        booking_id.into(),
        user_id.into(),
        Utc::now().into(),
        outbox::jobs_value(&jobs, &about),
    ];
    notifications::Model::find_by_statement(stmt(&ASK, values))
        .all(db)
        .await
}

/// The job delivering a message died: the message is `failed` (with the job's error), so
/// that it does not look pending forever. A message already sent stays sent.
pub async fn give_up(db: &impl ConnectionTrait, id: Uuid, error: &str) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        &GIVE_UP,
        [
            id.into(),
            error.to_owned().into(),
            NotificationStatus::Failed.as_str().into(),
            NotificationStatus::Sent.as_str().into(),
        ],
    ))
    .await?;
    Ok(())
}

const EMAIL: &str = quoted!(NotificationChannel::Email);

sql! {
    /// The messages `$1` (ids), `$2` (dedup keys), `$3` (channels), `$4` (kinds) about
    /// booking `$5` to user `$6` at `$7`, and the jobs `$8` that send them (an SMS only to a
    /// user with a phone number).
    ASK = "WITH about AS (
            INSERT INTO notifications (id, dedup_key, booking_id, user_id, channel, kind, recipient, created_at, updated_at)
            SELECT n.id, n.dedup_key, $5, u.id, n.channel, n.kind,
                   CASE n.channel WHEN ", EMAIL, " THEN u.email ELSE u.phone END, $7, $7
              FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
                   AS n(id, dedup_key, channel, kind, i)
              JOIN users u ON u.id = $6
             WHERE n.channel = ", EMAIL, " OR u.phone IS NOT NULL
             ORDER BY n.i
            ON CONFLICT (dedup_key) DO NOTHING
            RETURNING *),
         jobs AS (", orderly_jobs::insert_jobs!("$8", about), ")
         SELECT * FROM about";

    /// Message `$1` failed with `$2` (status `$3`) unless it was sent (status `$4`).
    GIVE_UP = "UPDATE notifications SET status = $3, last_error = $2 WHERE id = $1 AND status <> $4";
}
