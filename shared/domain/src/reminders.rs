//! Reminders before a listing starts: every `confirmed` or `paid` booking of a listing that
//! starts soon gets one reminder e-mail and one SMS. The messages' dedup keys (booking,
//! channel, kind) make that once per booking, however often a tick asks.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use uuid::Uuid;

use super::notifications;
use orderly_db::bookings::BookingStatus;
use orderly_db::listings::ListingStatus;
use orderly_db::notifications::{NotificationChannel, NotificationKind};
use orderly_db::sql::stmt;
use orderly_db::{quoted, sql};
use orderly_jobs::wake;

/// Bookings asked about per transaction.
pub const BATCH: u64 = 200;
/// Most bookings one run asks about; a later tick goes on from where it stopped.
pub const MOST_PER_RUN: u64 = 20_000;

const WANTED: [(NotificationChannel, NotificationKind); 2] = [
    (NotificationChannel::Email, NotificationKind::Reminder),
    (NotificationChannel::Sms, NotificationKind::Reminder),
];

/// Asks for the reminders of every `confirmed` or `paid` booking whose published listing
/// starts after now and no later than `until`, and that was not reminded yet; `batch`
/// bookings per transaction, at most `most` in all. Returns how many bookings were asked
/// about.
pub async fn ask_due(
    db: &DatabaseConnection,
    until: DateTime<Utc>,
    batch: u64,
    most: u64,
) -> Result<u64, DbErr> {
    let mut asked = 0;
    while asked < most {
        let txn = db.begin().await?;
        let due = due(&txn, until, batch.min(most - asked)).await?;
        for &(booking_id, customer_id) in &due {
            notifications::ask(&txn, booking_id, customer_id, &WANTED, &[], None).await?;
        }
        wake::commit(db, txn).await?;
        asked += due.len() as u64;
        if (due.len() as u64) < batch {
            break;
        }
    }
    Ok(asked)
}

/// Up to `limit` bookings due a reminder, as (booking, customer), soonest listing first.
async fn due(
    db: &impl ConnectionTrait,
    until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<(Uuid, Uuid)>, DbErr> {
    // The reminder e-mail is asked for with every reminder (the SMS only with a phone
    // number), so its row is what says "reminded".
    let rows = db
        .query_all_raw(stmt(&DUE, vec![until.into(), (limit as i64).into()]))
        .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get("", "id")?, row.try_get("", "customer_id")?)))
        .collect()
}

sql! {
    /// Up to `$2` bookings (id, customer) confirmed or paid of published listings starting
    /// after now and by `$1` without a reminder e-mail, soonest listing first.
    DUE = "SELECT b.id, b.customer_id
               FROM listings l
               JOIN bookings b ON b.listing_id = l.id
                AND b.status IN (", quoted!(BookingStatus::Confirmed), ", ", quoted!(BookingStatus::Paid), ")
              WHERE l.status = ", quoted!(ListingStatus::Published), " AND l.starts_at > now() AND l.starts_at <= $1
                AND NOT EXISTS (SELECT 1 FROM notifications n
                                 WHERE n.booking_id = b.id AND n.kind = ", quoted!(NotificationKind::Reminder), "
                                   AND n.channel = ", quoted!(NotificationChannel::Email), ")
              ORDER BY l.starts_at, b.id
              LIMIT $2";
}
