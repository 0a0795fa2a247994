//! Reconciliation with the payment provider, the source of truth about money. A scheduled
//! run compares each booking that is not final, and each recent final one, with its payment
//! at the provider (and with its own jobs), and repairs what disagrees:
//!
//! - captured at the provider but the booking ended → its refund is queued;
//! - authorised but the booking expired → confirmed again if its seats remain (capture
//!   queued), else the authorisation is cancelled;
//! - refunded at the provider → recorded (in full: the booking `refunded`, seats back; in
//!   part: the refunded amount, counted by the report on its day);
//! - captured, cancelled or authorised at the provider with nothing recorded (a lost answer
//!   and a lost webhook) → recorded;
//! - `confirmed` with no live capture job → a capture job.
//!
//! Each repair is logged, counted (`payment_repairs_total{mismatch}`) and kept in
//! `payment_repairs`, which the dashboard's money page lists. Bookings are taken oldest
//! comparison first, a bounded number per run, and none that changed in the last moments
//! (their own jobs are at work on them).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};
use uuid::Uuid;

use super::bookings;
use super::payments::{self, PaymentError};
use orderly_db::bookings::{self as booking_rows, BookingStatus};
use orderly_db::payments::{self as payment_rows, PaymentProvider, PaymentStatus};
use orderly_db::sql::stmt;
use orderly_db::{quoted, sql};
use orderly_jobs::outbox::LIVE;
use orderly_jobs::{CancelPayment, CapturePayment, Job, MAX_ROUND, RefundPayment, outbox, wake};
use orderly_providers::ProviderError;
use orderly_providers::payments::{Intent, IntentState, PaymentGateway};

/// How the reconciliation picks bookings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Final bookings (paid, refunded, expired, cancelled) compared for this long after
    /// their last change.
    pub recent: Duration,
    /// Bookings changed more recently than this are left to their own jobs.
    pub settle: Duration,
    /// Most bookings compared in one run (each is one read at the provider).
    pub most: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            recent: Duration::from_secs(7 * 24 * 3600),
            settle: Duration::from_secs(120),
            most: 200,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Bookings compared with the provider.
    pub checked: u64,
    /// Bookings repaired.
    pub repaired: u64,
    /// Bookings the provider could not be asked about (left for the next run).
    pub unreachable: u64,
}

/// One run with the default [`Options`].
pub async fn reconcile(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
) -> Result<Reconciled, PaymentError> {
    reconcile_with(db, gateway, Options::default()).await
}

/// One run: compares up to `options.most` bookings with the provider and repairs them.
/// The simulated provider keeps no state, so there is nothing to compare with.
pub async fn reconcile_with(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    options: Options,
) -> Result<Reconciled, PaymentError> {
    let mut done = Reconciled::default();
    if gateway.provider() != PaymentProvider::Stripe {
        return Ok(done);
    }
    for booking_id in candidates(db, &options).await? {
        let Some((_, payment)) = bookings::read(db, booking_id).await? else {
            continue;
        };
        let Some(provider_id) = payment.provider_payment_id.clone() else {
            continue;
        };
        let intent = match gateway.retrieve(&provider_id).await {
            Ok(intent) => intent,
            Err(ProviderError::Transient(e)) => {
                tracing::warn!(booking.id = %booking_id, error = %e, "reconciliation: the provider could not be asked");
                done.unreachable += 1;
                continue;
            }
            // The provider will never show it (another account's key, a deleted object):
            // said once per pass, and the booking goes to the back of the line, so one
            // such booking never stops the rest.
            Err(e) => {
                tracing::error!(booking.id = %booking_id, error = %e, "reconciliation: the provider cannot show this booking's payment");
                metrics::counter!("payment_reconcile_failures_total").increment(1);
                mark_reconciled(db, booking_id).await?;
                continue;
            }
        };
        done.checked += 1;
        match repair(db, booking_id, &intent).await {
            Ok(true) => done.repaired += 1,
            Ok(false) => {}
            Err(PaymentError::Db(e)) => return Err(PaymentError::Db(e)),
            Err(e) => {
                tracing::error!(booking.id = %booking_id, error = %e, "reconciliation: the booking could not be repaired");
                metrics::counter!("payment_reconcile_failures_total").increment(1);
                mark_reconciled(db, booking_id).await?;
            }
        }
    }
    Ok(done)
}

/// Sends a booking to the back of the reconciliation's line.
async fn mark_reconciled(db: &impl ConnectionTrait, booking_id: Uuid) -> Result<(), PaymentError> {
    db.execute_raw(stmt(&MARK_RECONCILED, [booking_id.into()]))
        .await?;
    Ok(())
}

/// The bookings to compare: not final, or final and changed within `recent`; with a payment
/// at the provider; not changed within `settle`; oldest comparison first.
async fn candidates(db: &DatabaseConnection, options: &Options) -> Result<Vec<Uuid>, PaymentError> {
    let rows = db
        .query_all_raw(stmt(
            &CANDIDATES,
            [
                options.recent.as_secs_f64().into(),
                options.settle.as_secs_f64().into(),
                (options.most as i64).into(),
            ],
        ))
        .await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get::<Uuid>("", "id"))
        .collect::<Result<_, _>>()?)
}

/// Compares one booking with `intent` (its payment at the provider) under the booking's
/// lock and repairs what disagrees, recording each repair. Returns whether it repaired.
async fn repair(
    db: &DatabaseConnection,
    booking_id: Uuid,
    intent: &Intent,
) -> Result<bool, PaymentError> {
    let txn = db.begin().await?;
    let (booking, payment) = bookings::lock(&txn, booking_id).await?;
    let mismatch = mismatch_of(&booking, &payment, intent);
    let mut actions: Vec<String> = Vec::new();
    if let Some(mismatch) = mismatch {
        let action = match mismatch {
            Mismatch::AuthorizedButExpired | Mismatch::AuthorizedButCancelled
                if cancel_alive(&txn, booking_id).await? =>
            {
                // Its cancellation may be at Stripe right now: confirming the booking again
                // would be undone by it. The next pass sees how it ended.
                wake::commit(db, txn).await?;
                return Ok(false);
            }
            Mismatch::AuthorizedButExpired => {
                if bookings::reinstate(&txn, booking.clone(), payment.clone(), None).await? {
                    "its seats were still free: the booking is confirmed again and its capture queued"
                } else {
                    ensure_job(&txn, booking_id, JobFamily::Cancel).await?;
                    "its seats are gone: the authorisation is cancelled"
                }
            }
            Mismatch::AuthorizedButCancelled => {
                ensure_job(&txn, booking_id, JobFamily::Cancel).await?;
                "the booking was cancelled: the authorisation is cancelled"
            }
            _ => {
                payments::apply_intent(&txn, booking.clone(), payment.clone(), intent, None)
                    .await?;
                mismatch.action()
            }
        };
        actions.push(action.to_owned());
    }
    // What the rows say now, and whether the job that must move them next is alive.
    let (booking, payment) = bookings::lock(&txn, booking_id).await?;
    if payment.status == PaymentStatus::Captured
        && payments::refund_owed(booking.status)
        && payment.amount_refunded_cents < payment.amount_captured_cents
        && let Some(round) = ensure_job(&txn, booking_id, JobFamily::Refund).await?
    {
        actions.push(format!(
            "a refund job (round {round}) was queued: none was alive"
        ));
    }
    if booking.status == BookingStatus::Confirmed
        && payment.status == PaymentStatus::Authorized
        && intent.state == IntentState::Authorized
        && let Some(round) = ensure_job(&txn, booking_id, JobFamily::Capture).await?
    {
        actions.push(format!(
            "a capture job (round {round}) was queued: none was alive"
        ));
    }
    mark_reconciled(&txn, booking_id).await?;
    let name = match (mismatch, actions.is_empty()) {
        (_, true) => None,
        (Some(m), false) => Some(m.name()),
        (None, false) => Some("job_missing"),
    };
    if let Some(name) = name {
        let action = actions.join("; ");
        txn.execute_raw(stmt(
            &REPAIRED,
            [
                Uuid::now_v7().into(),
                booking_id.into(),
                name.into(),
                action.clone().into(),
            ],
        ))
        .await?;
        metrics::counter!("payment_repairs_total", "mismatch" => name).increment(1);
        tracing::warn!(booking.id = %booking_id, repair.mismatch = name, repair.action = %action, "reconciliation repaired a booking");
    }
    wake::commit(db, txn).await?;
    Ok(name.is_some())
}

/// What can disagree between a booking and its payment at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mismatch {
    /// Captured at the provider; the booking ended.
    CapturedButEnded,
    /// Captured at the provider; recorded as not captured.
    CaptureNotRecorded,
    /// Authorised at the provider; the booking expired.
    AuthorizedButExpired,
    /// Authorised at the provider; the booking was cancelled and no cancellation is alive.
    AuthorizedButCancelled,
    /// Authorised at the provider; recorded as waiting for payment.
    AuthorizationNotRecorded,
    /// Cancelled at the provider; recorded as open.
    CancelNotRecorded,
    /// More refunded at the provider than recorded.
    RefundedAtProvider,
}

impl Mismatch {
    fn name(self) -> &'static str {
        match self {
            Self::CapturedButEnded => "captured_but_ended",
            Self::CaptureNotRecorded => "capture_not_recorded",
            Self::AuthorizedButExpired => "authorized_but_expired",
            Self::AuthorizedButCancelled => "authorized_but_cancelled",
            Self::AuthorizationNotRecorded => "authorization_not_recorded",
            Self::CancelNotRecorded => "cancel_not_recorded",
            Self::RefundedAtProvider => "refunded_at_provider",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Self::CapturedButEnded => "recorded the capture and queued its refund",
            Self::CaptureNotRecorded => "recorded the capture: the booking is paid",
            Self::AuthorizedButExpired => "confirmed again",
            Self::AuthorizedButCancelled => "the authorisation is cancelled",
            Self::AuthorizationNotRecorded => {
                "recorded the authorisation: the booking is confirmed"
            }
            Self::CancelNotRecorded => "recorded the cancellation",
            Self::RefundedAtProvider => "recorded the refund",
        }
    }
}

fn mismatch_of(
    booking: &booking_rows::Model,
    payment: &payment_rows::Model,
    intent: &Intent,
) -> Option<Mismatch> {
    let ended = payments::refund_owed(booking.status);
    let open = matches!(
        payment.status,
        PaymentStatus::Creating | PaymentStatus::RequiresPayment | PaymentStatus::Authorized
    );
    match intent.state {
        IntentState::Captured if intent.amount_refunded_cents > payment.amount_refunded_cents => {
            Some(Mismatch::RefundedAtProvider)
        }
        IntentState::Captured if payment.status != PaymentStatus::Captured && ended => {
            (payment.status != PaymentStatus::Refunded).then_some(Mismatch::CapturedButEnded)
        }
        IntentState::Captured => (payment.status != PaymentStatus::Captured
            && payment.status != PaymentStatus::Refunded)
            .then_some(Mismatch::CaptureNotRecorded),
        IntentState::Authorized if booking.status == BookingStatus::Expired && open => {
            Some(Mismatch::AuthorizedButExpired)
        }
        IntentState::Authorized if booking.status == BookingStatus::Cancelled && open => {
            Some(Mismatch::AuthorizedButCancelled)
        }
        IntentState::Authorized => (booking.status == BookingStatus::PendingPayment)
            .then_some(Mismatch::AuthorizationNotRecorded),
        IntentState::Canceled => (open && booking.status != BookingStatus::PendingPayment)
            .then_some(Mismatch::CancelNotRecorded),
        IntentState::RequiresPayment | IntentState::Processing => None,
    }
}

/// A booking's payment job that must be alive.
#[derive(Debug, Clone, Copy)]
enum JobFamily {
    Capture,
    Cancel,
    Refund,
}

/// Queues the next round of a booking's `family` job unless one is pending, queued or
/// running; returns the round queued. A family that used up its rounds is left to an
/// operator (the repair is still recorded).
async fn ensure_job(
    txn: &DatabaseTransaction,
    booking_id: Uuid,
    family: JobFamily,
) -> Result<Option<u32>, PaymentError> {
    Ok(match family {
        JobFamily::Capture => {
            outbox::ensure_live_round(txn, |round| CapturePayment { booking_id, round }, None)
                .await?
        }
        JobFamily::Cancel => {
            outbox::ensure_live_round(txn, |round| CancelPayment { booking_id, round }, None)
                .await?
        }
        JobFamily::Refund => {
            outbox::ensure_live_round(txn, |round| RefundPayment { booking_id, round }, None)
                .await?
        }
    })
}

/// Whether a round of the booking's `cancel_payment` job is pending, queued or running.
async fn cancel_alive(txn: &DatabaseTransaction, booking_id: Uuid) -> Result<bool, PaymentError> {
    let keys: Vec<String> = (0..=MAX_ROUND)
        .map(|round| CancelPayment { booking_id, round }.dedup_key())
        .collect();
    let row = txn.query_one_raw(stmt(&LIVE_ROUNDS, [keys.into()])).await?;
    Ok(match row {
        Some(row) => row.try_get::<i64>("", "n")? > 0,
        None => false,
    })
}

sql! {
    /// The payment of booking `$1` was compared now: it goes to the back of the line.
    MARK_RECONCILED = "UPDATE payments SET reconciled_at = now() WHERE booking_id = $1";

    /// Up to `$3` bookings with a Stripe payment, not final or changed within `$1` seconds,
    /// neither they nor their payment changed within `$2` seconds; oldest comparison first.
    CANDIDATES = "SELECT b.id FROM bookings b JOIN payments p ON p.booking_id = b.id
              WHERE p.provider = ", quoted!(PaymentProvider::Stripe), " AND p.provider_payment_id IS NOT NULL
                AND (b.status IN (", quoted!(BookingStatus::PendingPayment), ", ", quoted!(BookingStatus::Confirmed), ")
                     OR b.updated_at > now() - make_interval(secs => $1))
                AND b.updated_at < now() - make_interval(secs => $2)
                AND p.updated_at < now() - make_interval(secs => $2)
              ORDER BY p.reconciled_at NULLS FIRST, b.id
              LIMIT $3";

    /// Repair `$1` of booking `$2`: mismatch `$3`, what was done `$4`.
    REPAIRED = "INSERT INTO payment_repairs (id, booking_id, mismatch, action) VALUES ($1, $2, $3, $4)";

    /// How many of the outbox rows `$1` (task ids) are live.
    LIVE_ROUNDS = "SELECT count(*) AS n FROM outbox WHERE task_id = ANY($1) AND status IN ", LIVE;
}
