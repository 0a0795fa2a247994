//! The sweep, the safety net behind the delayed jobs: unpaid bookings whose hold ended and
//! whose `expire_booking` job was lost or is far behind are expired, and bookings stuck
//! `confirmed` with no capture job left to move them are counted, for a human to look at.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use uuid::Uuid;

use super::payments::{self, PaymentError};
use orderly_db::bookings::BookingStatus;
use orderly_db::sql::stmt;
use orderly_db::{quoted, sql};
use orderly_jobs::outbox::LIVE;
use orderly_jobs::{CapturePayment, Job, MAX_ROUND, round_key};
use orderly_providers::payments::PaymentGateway;

/// How long past its hold an unpaid booking waits for its own job before the sweep acts.
pub const LATE: Duration = Duration::from_secs(60);
/// Bookings expired per round.
pub const ROUND: u64 = 500;
/// Most rounds in one sweep; the next tick goes on.
pub const MOST_ROUNDS: u32 = 20;
/// How long a booking may stay `confirmed` without a live capture job before it counts as
/// stuck (its capture died, or was never queued).
pub const STUCK_AFTER: Duration = Duration::from_secs(600);
/// How many stuck bookings are named in the log.
pub const SAMPLE: u64 = 20;

/// What one sweep found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Unpaid bookings it expired.
    pub expired: u64,
    /// Bookings `confirmed` for longer than [`STUCK_AFTER`] with no live capture job.
    pub stuck_confirmed: u64,
    /// Some of them, by id.
    pub stuck_sample: Vec<Uuid>,
}

/// Expires overdue holds (at most [`MOST_ROUNDS`] × [`ROUND`]) and counts stuck bookings.
pub async fn sweep(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
) -> Result<Swept, PaymentError> {
    let mut swept = Swept::default();
    for _ in 0..MOST_ROUNDS {
        let expired = payments::expire_overdue(db, gateway, LATE, ROUND).await?;
        swept.expired += expired;
        if expired < ROUND {
            break;
        }
    }
    let (count, sample) = stuck_confirmed(db, STUCK_AFTER, SAMPLE).await?;
    swept.stuck_confirmed = count;
    swept.stuck_sample = sample;
    Ok(swept)
}

/// How many bookings are `confirmed` since more than `older_than` with no capture job
/// pending, queued or running (it died, or none was written), and up to `sample` of them.
pub async fn stuck_confirmed(
    db: &impl ConnectionTrait,
    older_than: Duration,
    sample: u64,
) -> Result<(u64, Vec<Uuid>), DbErr> {
    let row = db
        .query_one_raw(stmt(
            &STUCK_CONFIRMED,
            vec![
                older_than.as_secs_f64().into(),
                capture_key_prefix().into(),
                (sample as i64).into(),
                round_suffixes().into(),
            ],
        ))
        .await?;
    match row {
        Some(row) => {
            let n: i64 = row.try_get("", "n")?;
            Ok((n.max(0) as u64, row.try_get("", "sample")?))
        }
        None => Ok((0, Vec::new())),
    }
}

/// What a booking's capture job key starts with: its dedup key less the booking id.
fn capture_key_prefix() -> String {
    let key = CapturePayment {
        booking_id: Uuid::nil(),
        round: 0,
    }
    .dedup_key();
    key.trim_end_matches(&Uuid::nil().to_string()).to_owned()
}

/// What follows the booking id in the key of each round of its capture job.
fn round_suffixes() -> Vec<String> {
    (0..=MAX_ROUND)
        .map(|round| round_key("", Uuid::nil(), round))
        .map(|key| {
            key.trim_start_matches(&format!(":{}", Uuid::nil()))
                .to_owned()
        })
        .collect()
}

sql! {
    /// How many bookings are confirmed since more than `$1` seconds with no live outbox row
    /// among the keys `$2` (the capture key's prefix) + booking id + each suffix of `$4`, and
    /// the first `$3` of them.
    STUCK_CONFIRMED = "WITH stuck AS (
                SELECT b.id FROM bookings b
                 WHERE b.status = ", quoted!(BookingStatus::Confirmed), "
                   AND b.confirmed_at < now() - make_interval(secs => $1)
                   AND NOT EXISTS (SELECT 1 FROM outbox o
                                    WHERE o.task_id IN (SELECT $2 || b.id::text || r
                                                          FROM unnest($4::text[]) r)
                                      AND o.status IN ", LIVE, "))
             SELECT count(*) AS n,
                    COALESCE((array_agg(id ORDER BY id))[1:$3], '{}') AS sample
               FROM stuck";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capture_key_is_its_prefix_and_the_booking_id() {
        let booking_id = Uuid::now_v7();
        assert_eq!(
            format!("{}{booking_id}", capture_key_prefix()),
            CapturePayment {
                booking_id,
                round: 0
            }
            .dedup_key()
        );
        let suffixes = round_suffixes();
        assert_eq!(suffixes[0], "");
        assert_eq!(
            format!("{}{booking_id}{}", capture_key_prefix(), suffixes[3]),
            CapturePayment {
                booking_id,
                round: 3
            }
            .dedup_key()
        );
    }
}
