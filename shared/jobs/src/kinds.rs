//! Every job payload. Payloads carry IDs only; handlers read current state from the database.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Job, JobKind, Queue, RetryPolicy};

/// Expire a booking whose hold ran out unpaid (due at `hold_expires_at`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExpireBooking {
    /// The booking.
    pub booking_id: Uuid,
}

impl Job for ExpireBooking {
    const KIND: JobKind = JobKind::ExpireBooking;
    const QUEUE: Queue = Queue::Bookings;

    fn dedup_key(&self) -> String {
        format!("{}:{}", Self::NAME, self.booking_id)
    }
}

/// Capture an authorised payment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CapturePayment {
    /// The booking whose payment is captured.
    pub booking_id: Uuid,
    /// 0 for the capture its confirmation queued; a later round (up to [`MAX_ROUND`]) for
    /// one the reconciliation queued after that job had ended.
    #[serde(default)]
    pub round: u32,
}

impl Job for CapturePayment {
    const KIND: JobKind = JobKind::CapturePayment;
    const QUEUE: Queue = Queue::Payments;
    const TIMEOUT: Duration = Duration::from_secs(60);

    fn dedup_key(&self) -> String {
        round_key(Self::NAME, self.booking_id, self.round)
    }
}

/// The most rounds of one booking's payment job that the reconciliation queues.
pub const MAX_ROUND: u32 = 10;

/// `name:booking` for round 0 (the key such jobs always had), `name:booking:round` after.
pub fn round_key(name: &str, booking_id: Uuid, round: u32) -> String {
    match round {
        0 => format!("{name}:{booking_id}"),
        round => format!("{name}:{booking_id}:{round}"),
    }
}

/// Cancel a payment that was never captured (expiry, cancellation).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CancelPayment {
    /// The booking whose payment is cancelled.
    pub booking_id: Uuid,
    /// 0 for the cancellation that follows expiry or cancellation; 1 for an authorisation
    /// that arrived after it (a second, separate job).
    #[serde(default)]
    pub round: u32,
}

impl Job for CancelPayment {
    const KIND: JobKind = JobKind::CancelPayment;
    const QUEUE: Queue = Queue::Payments;
    const TIMEOUT: Duration = Duration::from_secs(60);

    fn dedup_key(&self) -> String {
        format!("{}:{}:{}", Self::NAME, self.booking_id, self.round)
    }
}

/// Refund what is left of a captured payment of a booking that ended (cancellation after
/// capture, a capture found after the booking ended).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundPayment {
    /// The booking whose payment is refunded.
    pub booking_id: Uuid,
    /// 0 for the refund its decision queued; a later round for one the reconciliation found
    /// still owed after that job had ended (a separate job).
    #[serde(default)]
    pub round: u32,
}

impl Job for RefundPayment {
    const KIND: JobKind = JobKind::RefundPayment;
    const QUEUE: Queue = Queue::Payments;
    const TIMEOUT: Duration = Duration::from_secs(60);

    fn dedup_key(&self) -> String {
        round_key(Self::NAME, self.booking_id, self.round)
    }
}

/// Apply a provider's webhook event stored in the inbox (`processed_webhook_events`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApplyPaymentEvent {
    /// The provider's event id (`evt_...`).
    pub event_id: String,
}

impl Job for ApplyPaymentEvent {
    const KIND: JobKind = JobKind::ApplyPaymentEvent;
    const QUEUE: Queue = Queue::Payments;

    fn dedup_key(&self) -> String {
        format!("{}:{}", Self::NAME, self.event_id)
    }
}

/// The scheduler's `reconcile_payments` tick: compare bookings with the payment provider
/// and repair what disagrees.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReconcilePayments {
    /// The tick it belongs to.
    pub tick: chrono::DateTime<chrono::Utc>,
}

impl Job for ReconcilePayments {
    const KIND: JobKind = JobKind::ReconcilePayments;
    const QUEUE: Queue = Queue::Payments;
    /// The next tick reconciles again: a few retries are enough.
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_secs(10),
        max_delay: Duration::from_secs(60),
    };
    const TIMEOUT: Duration = Duration::from_secs(300);

    fn dedup_key(&self) -> String {
        tick_key(Self::NAME, self.tick)
    }
}

/// Send the e-mail of a `notifications` row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendEmail {
    /// The notification to deliver.
    pub notification_id: Uuid,
}

impl Job for SendEmail {
    const KIND: JobKind = JobKind::SendEmail;
    const QUEUE: Queue = Queue::Email;

    fn dedup_key(&self) -> String {
        format!("{}:{}", Self::NAME, self.notification_id)
    }
}

/// Send the SMS of a `notifications` row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendSms {
    /// The notification to deliver.
    pub notification_id: Uuid,
}

impl Job for SendSms {
    const KIND: JobKind = JobKind::SendSms;
    const QUEUE: Queue = Queue::Sms;

    fn dedup_key(&self) -> String {
        format!("{}:{}", Self::NAME, self.notification_id)
    }
}

/// Does nothing: a queue health probe and the benchmark's unit of work.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Noop {
    /// Makes each probe distinct.
    pub id: Uuid,
}

impl Job for Noop {
    const KIND: JobKind = JobKind::Noop;
    const QUEUE: Queue = Queue::Bookings;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(1),
    };

    fn dedup_key(&self) -> String {
        format!("{}:{}", Self::NAME, self.id)
    }
}

/// Create the payment of a booking whose provider could not be reached while the booking
/// request was served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreatePayment {
    /// The booking.
    pub booking_id: Uuid,
}

impl Job for CreatePayment {
    const KIND: JobKind = JobKind::CreatePayment;
    const QUEUE: Queue = Queue::Payments;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
    };

    fn dedup_key(&self) -> String {
        format!("{}:{}", Self::NAME, self.booking_id)
    }
}

/// Compute, store and e-mail the report of one day of the report time zone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DailyReport {
    /// The day, in `REPORT_TZ`.
    pub date: chrono::NaiveDate,
    /// The admin request that asked for it (`POST /api/v1/admin/reports/daily`); `None` for
    /// the scheduler's nightly run. A request is a run of its own: it recomputes the day
    /// even when the nightly job already ran.
    #[serde(default)]
    pub request: Option<Uuid>,
}

impl Job for DailyReport {
    const KIND: JobKind = JobKind::DailyReport;
    const QUEUE: Queue = Queue::Reports;
    const TIMEOUT: Duration = Duration::from_secs(120);

    fn dedup_key(&self) -> String {
        match self.request {
            None => format!("{}:{}", Self::NAME, self.date),
            Some(request) => format!("{}:{}:{request}", Self::NAME, self.date),
        }
    }
}

/// A scheduler tick's dedup key: the job's name and the tick, to the second, in UTC.
fn tick_key(name: &str, tick: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{name}:{}",
        tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// The scheduler's `reminders` tick: ask for the reminders of the bookings whose listing
/// starts within `lead_hours` of `tick`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reminders {
    /// The tick it belongs to.
    pub tick: chrono::DateTime<chrono::Utc>,
    /// `REMINDER_LEAD_HOURS` of the scheduler that fired it.
    pub lead_hours: u32,
}

impl Reminders {
    /// The latest start of a listing whose bookings this tick reminds.
    pub fn until(&self) -> chrono::DateTime<chrono::Utc> {
        self.tick + chrono::Duration::hours(i64::from(self.lead_hours))
    }
}

impl Job for Reminders {
    const KIND: JobKind = JobKind::Reminders;
    const QUEUE: Queue = Queue::Bookings;
    const TIMEOUT: Duration = Duration::from_secs(300);

    fn dedup_key(&self) -> String {
        tick_key(Self::NAME, self.tick)
    }
}

/// The scheduler's `sweep` tick: expire overdue unpaid bookings, report stuck ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sweep {
    /// The tick it belongs to.
    pub tick: chrono::DateTime<chrono::Utc>,
}

impl Job for Sweep {
    const KIND: JobKind = JobKind::Sweep;
    const QUEUE: Queue = Queue::Bookings;
    /// The next tick sweeps again: a few quick retries are enough.
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(30),
    };
    const TIMEOUT: Duration = Duration::from_secs(120);

    fn dedup_key(&self) -> String {
        tick_key(Self::NAME, self.tick)
    }
}

/// The scheduler's `retention` tick: delete what is past its keeping.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Retention {
    /// The tick it belongs to.
    pub tick: chrono::DateTime<chrono::Utc>,
}

impl Job for Retention {
    const KIND: JobKind = JobKind::Retention;
    /// Long and in no hurry, beside the nightly report rather than the booking work.
    const QUEUE: Queue = Queue::Reports;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(900),
    };
    const TIMEOUT: Duration = Duration::from_secs(300);

    fn dedup_key(&self) -> String {
        tick_key(Self::NAME, self.tick)
    }
}
