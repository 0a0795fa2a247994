//! Every job payload, and the one list of them: [`for_each_job!`]. Payloads carry IDs only;
//! handlers read current state from the database.
//!
//! A job type is declared once: its payload here and its `impl Job` (name, queue, retry
//! policy, timeout, dedup key), with its name in [`for_each_job!`]. [`JobKind`] and its
//! lookups, the worker's dispatch and what the API says of a job all derive from that list.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Job, Queue, RetryPolicy};

/// The one list of job types, in declaration order: `for_each_job!(then)` expands to
/// `then! { ExpireBooking, CreatePayment, ... }`, each a payload type of this crate, so
/// that code naming every job type (here [`JobKind`]; in the worker its dispatch) is
/// generated from it. A payload with an `impl Job` missing here does not compile (it is not
/// [`Listed`]).
#[macro_export]
macro_rules! for_each_job {
    ($then:ident) => {
        $then! {
            ExpireBooking,
            CreatePayment,
            CapturePayment,
            CancelPayment,
            RefundPayment,
            SendEmail,
            SendSms,
            Noop,
            DailyReport,
            Reminders,
            Sweep,
            Retention,
            ApplyPaymentEvent,
            ReconcilePayments,
        }
    };
}

/// A job type that [`for_each_job!`] lists: its [`JobKind`]. Implemented by the list only.
pub trait Listed {
    /// Which kind it is.
    const KIND: JobKind;
}

/// [`JobKind`], its lookups and each payload's [`Listed`] from [`for_each_job!`].
macro_rules! declare_kinds {
    ($($job:ident,)*) => {
        /// Every kind of background work, one variant per [`Job`] type (named after it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum JobKind {
            $(#[doc = concat!("[`", stringify!($job), "`].")] $job,)*
        }

        impl JobKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [JobKind] = &[$(JobKind::$job,)*];

            /// The stable name stored with the job (`expire_booking`): its [`Job::NAME`].
            pub const fn name(self) -> &'static str {
                match self {
                    $(JobKind::$job => <$job as Job>::NAME,)*
                }
            }

            /// The queue it runs on: its [`Job::QUEUE`].
            pub const fn queue(self) -> Queue {
                match self {
                    $(JobKind::$job => <$job as Job>::QUEUE,)*
                }
            }

            /// Its own retry policy, without overrides: its [`Job::POLICY`].
            pub const fn policy(self) -> RetryPolicy {
                match self {
                    $(JobKind::$job => <$job as Job>::POLICY,)*
                }
            }

            /// The longest one attempt may run: its [`Job::TIMEOUT`].
            pub const fn timeout(self) -> Duration {
                match self {
                    $(JobKind::$job => <$job as Job>::TIMEOUT,)*
                }
            }
        }

        $(impl Listed for $job {
            const KIND: JobKind = JobKind::$job;
        })*
    };
}

for_each_job!(declare_kinds);

impl JobKind {
    /// The kind stored under `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.name() == name)
    }
}

/// Expire a booking whose hold ran out unpaid (due at `hold_expires_at`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExpireBooking {
    /// The booking.
    pub booking_id: Uuid,
}

impl Job for ExpireBooking {
    const NAME: &'static str = "expire_booking";
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
    const NAME: &'static str = "capture_payment";
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
    const NAME: &'static str = "cancel_payment";
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
    const NAME: &'static str = "refund_payment";
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
    const NAME: &'static str = "apply_payment_event";
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
    const NAME: &'static str = "reconcile_payments";
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
    const NAME: &'static str = "send_email";
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
    const NAME: &'static str = "send_sms";
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
    const NAME: &'static str = "noop";
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
    const NAME: &'static str = "create_payment";
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
    const NAME: &'static str = "daily_report";
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
    const NAME: &'static str = "reminders";
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
    const NAME: &'static str = "sweep";
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
    const NAME: &'static str = "retention";
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
