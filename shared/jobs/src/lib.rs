//! The job contract between the API, the scheduler and the worker.
//!
//! Every piece of background work is a [`Job`]: a payload of IDs, the queue it runs on, a
//! deterministic task id and its retry policy. There is one way to enqueue one:
//! [`outbox::enqueue`], which writes an outbox row inside the caller's transaction, so a
//! rolled-back transaction never produces a job and a committed one never loses its jobs;
//! that transaction commits with [`wake::commit`], which then wakes the relays.
//! [`outbox::enqueue_many`] writes many in one statement; work that belongs to no
//! transaction of the caller goes through an [`Enqueuer`], which commits concurrent calls
//! together.

pub mod enqueuer;
pub mod envelope;
pub mod kinds;
pub mod outbox;
pub mod pauses;
pub mod policy;
pub mod schedules;
pub mod wake;
pub mod workers;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use enqueuer::{EnqueueError, Enqueuer};
pub use envelope::Envelope;
pub use kinds::*;
pub use orderly_db::outbox::Queue;
pub use policy::RetryPolicy;

/// Declares [`JobKind`] and its stored names in one list, so the two cannot drift.
macro_rules! job_kinds {
    ($($(#[$doc:meta])* $kind:ident => $name:literal,)*) => {
        /// Every kind of background work, one variant per [`Job`] type. The worker's registry
        /// matches on it exhaustively: a kind without a handler does not compile.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum JobKind {
            $($(#[$doc])* $kind,)*
        }

        impl JobKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [JobKind] = &[$(JobKind::$kind,)*];

            /// The stable name stored with the job (`expire_booking`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(JobKind::$kind => $name,)*
                }
            }
        }
    };
}

job_kinds! {
    /// [`ExpireBooking`].
    ExpireBooking => "expire_booking",
    /// [`CreatePayment`].
    CreatePayment => "create_payment",
    /// [`CapturePayment`].
    CapturePayment => "capture_payment",
    /// [`CancelPayment`].
    CancelPayment => "cancel_payment",
    /// [`RefundPayment`].
    RefundPayment => "refund_payment",
    /// [`SendEmail`].
    SendEmail => "send_email",
    /// [`SendSms`].
    SendSms => "send_sms",
    /// [`Noop`].
    Noop => "noop",
    /// [`DailyReport`].
    DailyReport => "daily_report",
    /// [`Reminders`].
    Reminders => "reminders",
    /// [`Sweep`].
    Sweep => "sweep",
    /// [`Retention`].
    Retention => "retention",
    /// [`ApplyPaymentEvent`].
    ApplyPaymentEvent => "apply_payment_event",
    /// [`ReconcilePayments`].
    ReconcilePayments => "reconcile_payments",
}

impl JobKind {
    /// The kind stored under `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.name() == name)
    }
}

/// A kind of background work.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Which kind it is.
    const KIND: JobKind;
    /// Stable name stored with the job (`expire_booking`).
    const NAME: &'static str = Self::KIND.name();
    /// The queue it runs on.
    const QUEUE: Queue;
    /// How often and how patiently it is retried.
    const POLICY: RetryPolicy = RetryPolicy::DEFAULT;
    /// The longest one attempt may run.
    const TIMEOUT: Duration = Duration::from_secs(30);

    /// A key unique to this piece of work, derived from its IDs, so that enqueueing the
    /// same work twice yields one job (`expire_booking:<booking id>`).
    fn dedup_key(&self) -> String;
}
