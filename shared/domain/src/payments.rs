//! The payment state machine: create, capture, cancel, refund, and what the provider says
//! happened. The provider is the source of truth about money; our rows follow it.
//!
//! **No lock is held while the provider thinks.** A step reads the recorded state without
//! locks, calls the provider, then records the answer in a short transaction that locks the
//! booking and its payment again and applies the answer to the state it finds *then*
//! ([`apply_intent`] and the facts below it): a cancellation, a webhook or another job that
//! moved the booking meanwhile is never overwritten, only followed. Every money step that a
//! decision makes necessary (a refund owed, a cancellation) is a job written in the
//! transaction that makes the decision, never an inline call whose failure could be
//! forgotten.
//!
//! **Idempotency.** Each call carries a key derived from the booking and the step. A call
//! whose outcome is unknown (a 5xx, a lost answer) is counted on the payment
//! (`provider_attempts`). The provider replays what it stored under a key for a day, a 500
//! included, so the next try first reads the payment at the provider: if the earlier call
//! took effect, that is recorded without calling again; if the state proves it did nothing,
//! the call is made again under a new key (`…-capture-2`).

use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, IntoActiveModel,
    Set, TransactionTrait,
};
use uuid::Uuid;

use super::bookings::{self, BookingError};
use orderly_db::bookings::{self as booking_rows, BookingStatus};
use orderly_db::notifications::NotificationKind;
use orderly_db::payment_refunds::RefundSource;
use orderly_db::payments::{self as payment_rows, PaymentProvider, PaymentStatus};
use orderly_db::sql;
use orderly_db::sql::stmt;
use orderly_jobs::{CancelPayment, CreatePayment, Job, RefundPayment, outbox, wake};
use orderly_providers::payments::{Intent, IntentState, NewPayment, PaymentGateway, attempt_key};
use orderly_providers::{Detail, ProviderError};

/// Why a payment step did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The booking could not be read or moved.
    #[error(transparent)]
    Booking(#[from] BookingError),
    /// The provider refused (permanent), could not be reached (transient), or refused
    /// because of the payment's state there.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Recorded state that must not exist (a captured payment without a provider id).
    #[error("inconsistent payment: {0}")]
    Inconsistent(&'static str),
    /// A provider's event that this version cannot read (a newer API version): retrying
    /// cannot help until the code is upgraded.
    #[error("unreadable provider event: {0}")]
    Unreadable(String),
    /// Database trouble.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// How long after its hold ended an unpaid booking's expiry still asks the provider whether
/// the customer paid at the last moment; past it (the provider was unreachable all along)
/// the booking expires without asking, and its cancellation job reads the payment anyway.
pub const ASK_PROVIDER_WITHIN: Duration = Duration::from_secs(3600);

/// Creates the booking's payment at the provider while the booking request is served, for
/// every provider alike: the call runs outside any transaction, and its answer is recorded
/// in one short one ([`apply_intent`]: an authorisation given at once confirms the booking
/// there). `created` is what [`bookings::create`] just wrote. When the provider (or the
/// database) cannot be reached, the `create_payment` job queued with the booking takes over
/// and the payment stays `creating` (the frontend polls until the client secret appears).
/// A refusal (a card-level error) is returned: the request answers it and keeps nothing.
pub async fn start(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    created: &bookings::Created,
    request_id: Option<&str>,
) -> Result<(), ProviderError> {
    let (booking, payment) = (created.booking.clone(), created.payment.clone());
    let booking_id = booking.id;
    match create(db, gateway, booking, payment, request_id).await {
        Ok(()) => Ok(()),
        Err(PaymentError::Provider(refused @ ProviderError::Permanent(_))) => Err(refused),
        Err(e) => {
            tracing::warn!(booking.id = %booking_id, error = %e, "payment not created with the booking; the create_payment job takes over");
            Ok(())
        }
    }
}

/// The `create_payment` job, and the first try of [`start`]. The first call carries the
/// booking's `create` key; after a call with an unknown outcome, the payment is looked for
/// at the provider (by the booking id in its metadata) before a new key is used.
pub async fn create_at_provider(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
    request_id: Option<&str>,
) -> Result<(), PaymentError> {
    let Some((booking, payment)) = bookings::read(db, booking_id).await? else {
        return Ok(());
    };
    create(db, gateway, booking, payment, request_id).await
}

/// Creates the payment of `booking` as read (unlocked) from `payment`, and records the
/// provider's answer in one transaction that locks them again.
async fn create(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking: booking_rows::Model,
    payment: payment_rows::Model,
    request_id: Option<&str>,
) -> Result<(), PaymentError> {
    let booking_id = booking.id;
    if booking.status != BookingStatus::PendingPayment || payment.status != PaymentStatus::Creating
    {
        return Ok(());
    }
    let earlier = match payment.provider_attempts {
        0 => None,
        _ => gateway.find(booking_id).await?,
    };
    let created = match earlier {
        Some(intent) => Ok(intent),
        None => {
            gateway
                .create(&NewPayment {
                    booking_id,
                    amount_cents: payment.amount_cents,
                    currency: payment.currency.clone(),
                    idempotency_key: attempt_key(booking_id, "create", payment.provider_attempts),
                })
                .await
        }
    };
    let txn = db.begin().await?;
    let Some((booking, payment)) = lock_if_any(&txn, booking_id).await? else {
        return Ok(());
    };
    let created = match created {
        Ok(created) => created,
        Err(e) => {
            if payment.status == PaymentStatus::Creating {
                let failed = matches!(e, ProviderError::Permanent(_));
                let attempts = payment.provider_attempts + 1;
                let mut p = payment.into_active_model();
                if failed {
                    p.status = Set(PaymentStatus::Failed);
                } else {
                    p.provider_attempts = Set(attempts);
                }
                p.last_error = Set(Some(e.to_string()));
                p.updated_at = Set(Utc::now().into());
                p.update(&txn).await?;
                txn.commit().await?;
            }
            return Err(e.into());
        }
    };
    match booking.status {
        BookingStatus::PendingPayment => {}
        BookingStatus::Expired | BookingStatus::Cancelled => {
            // Released while the provider answered: what was just made is recorded and
            // cancelled by a job of its own, queued in this transaction.
            if payment.provider_payment_id.is_some() {
                return Ok(());
            }
            let recorded = payment.status == PaymentStatus::Creating;
            let payment = adopt(&txn, payment, &created).await?;
            if recorded && is_open(payment.status) {
                outbox::enqueue_next_round(
                    &txn,
                    |round| CancelPayment { booking_id, round },
                    request_id,
                )
                .await?;
                return Ok(wake::commit(db, txn).await?);
            }
            // Its cancellation already ran and found nothing to cancel: this one is
            // cancelled here, once. No money can move on it (its client secret was never
            // shown), so a failure is only logged.
            txn.commit().await?;
            let key = attempt_key(booking_id, "cancel-orphan", 0);
            if let Err(e) = gateway.cancel(&created.provider_payment_id, &key).await {
                tracing::warn!(booking.id = %booking_id, error = %e, "a payment made after its booking ended could not be cancelled at the provider");
            }
            return Ok(());
        }
        // Another run (the request's own try, with the same idempotency key) got the same
        // payment through first: it is live, so leave it alone.
        _ => return Ok(()),
    }
    let payment = if payment.status == PaymentStatus::Creating {
        let mut p = payment.into_active_model();
        p.provider_payment_id = Set(Some(created.provider_payment_id.clone()));
        p.client_secret = Set(created.client_secret.clone());
        p.status = Set(PaymentStatus::RequiresPayment);
        p.provider_attempts = Set(0);
        p.last_error = Set(None);
        p.updated_at = Set(Utc::now().into());
        let payment = p.update(&txn).await?;
        // The safety net that would have created it, not yet due, goes: nothing is left
        // for it to do (one in queue already finds the payment made).
        outbox::withdraw(&txn, &[CreatePayment { booking_id }.dedup_key()]).await?;
        payment
    } else {
        payment
    };
    // What the provider answered is applied as any of its answers is: authorised at once
    // (the simulated provider, a card needing no action), the booking is confirmed here.
    apply_intent(&txn, booking, payment, &created, request_id).await?;
    Ok(wake::commit(db, txn).await?)
}

/// The `capture_payment` job: a confirmed booking's payment is captured and the booking
/// becomes `paid`; a receipt follows. An authorisation that is gone (expired or cancelled at
/// the provider, or refused at capture) ends the booking: its seats return and the customer
/// is told; the job has then done its work (the payment keeps the provider's reason).
pub async fn capture(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
    request_id: Option<&str>,
) -> Result<(), PaymentError> {
    let Some((booking, payment)) = bookings::read(db, booking_id).await? else {
        return Ok(());
    };
    if booking.status != BookingStatus::Confirmed || payment.status != PaymentStatus::Authorized {
        return Ok(());
    }
    let provider_id = provider_id_of(&payment, "an authorised payment without a provider id")?;
    if payment.provider_attempts > 0 {
        let intent = gateway.retrieve(&provider_id).await?;
        if intent.state != IntentState::Authorized {
            return observed(db, booking_id, &intent, request_id).await;
        }
    }
    let key = attempt_key(booking_id, "capture", payment.provider_attempts);
    match gateway.capture(&provider_id, &key).await {
        Ok(intent) => observed(db, booking_id, &intent, request_id).await,
        Err(ProviderError::State(why)) => {
            let intent = gateway.retrieve(&provider_id).await?;
            if intent.state == IntentState::Authorized {
                return Err(ProviderError::State(why).into());
            }
            observed(db, booking_id, &intent, request_id).await
        }
        Err(ProviderError::Permanent(why)) => {
            // Refused for good: what became of the authorisation decides. One still there
            // is left for an operator (the job dies with the reason), never silently dropped.
            let intent = gateway.retrieve(&provider_id).await?;
            if intent.state == IntentState::Authorized {
                return Err(ProviderError::Permanent(why).into());
            }
            observed(db, booking_id, &intent, request_id).await
        }
        Err(unknown @ ProviderError::Transient(_)) => {
            unknown_outcome(db, booking_id, &payment, unknown).await
        }
    }
}

/// The `cancel_payment` job: a payment that was never captured is cancelled at the
/// provider. One captured there after all (its capture's answer was lost) is recorded as
/// captured, which queues its refund (a `refund_payment` job) in the same transaction.
pub async fn cancel(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
) -> Result<(), PaymentError> {
    let Some((booking, payment)) = bookings::read(db, booking_id).await? else {
        return Ok(());
    };
    // A booking that is live again (confirmed after all) keeps its payment.
    if !is_open(payment.status) || !refund_owed(booking.status) {
        return Ok(());
    }
    let provider_id = match &payment.provider_payment_id {
        Some(id) => Some(id.clone()),
        // A creation whose answer was lost may have made one.
        None if payment.provider_attempts > 0 => gateway
            .find(booking_id)
            .await?
            .map(|intent| intent.provider_payment_id),
        None => None,
    };
    let Some(provider_id) = provider_id else {
        // Nothing was ever made at the provider.
        let txn = db.begin().await?;
        let Some((_booking, payment)) = lock_if_any(&txn, booking_id).await? else {
            return Ok(());
        };
        if is_open(payment.status) && payment.provider_payment_id.is_none() {
            record_cancel(&txn, payment).await?;
        }
        return Ok(txn.commit().await?);
    };
    if payment.provider_attempts > 0 {
        let intent = gateway.retrieve(&provider_id).await?;
        if matches!(intent.state, IntentState::Canceled | IntentState::Captured) {
            return observed(db, booking_id, &intent, None).await;
        }
    }
    let key = attempt_key(booking_id, "cancel", payment.provider_attempts);
    match gateway.cancel(&provider_id, &key).await {
        Ok(intent) => observed(db, booking_id, &intent, None).await,
        Err(ProviderError::State(why)) => {
            let intent = gateway.retrieve(&provider_id).await?;
            match intent.state {
                IntentState::Canceled | IntentState::Captured => {
                    observed(db, booking_id, &intent, None).await
                }
                _ => Err(ProviderError::State(why).into()),
            }
        }
        Err(ProviderError::Permanent(why)) => Err(ProviderError::Permanent(why).into()),
        Err(unknown @ ProviderError::Transient(_)) => {
            unknown_outcome(db, booking_id, &payment, unknown).await
        }
    }
}

/// The `refund_payment` job: what is left of a captured payment of a booking that ended
/// (cancelled, or expired after its capture) is refunded, and the booking becomes
/// `refunded`. A booking still `paid` is owed nothing, whatever queued the job.
pub async fn refund(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
    request_id: Option<&str>,
) -> Result<(), PaymentError> {
    let Some((booking, payment)) = bookings::read(db, booking_id).await? else {
        return Ok(());
    };
    if payment.status != PaymentStatus::Captured || !refund_owed(booking.status) {
        return Ok(());
    }
    let provider_id = provider_id_of(&payment, "a captured payment without a provider id")?;
    let captured = payment.amount_captured_cents;
    let mut refunded_before = payment.amount_refunded_cents;
    if payment.provider_attempts > 0 {
        let intent = gateway.retrieve(&provider_id).await?;
        if intent.amount_refunded_cents >= captured {
            return observed(db, booking_id, &intent, request_id).await;
        }
        refunded_before = refunded_before.max(intent.amount_refunded_cents);
    }
    let amount = captured - refunded_before;
    // The key names the refund (what was refunded before it), so a refund of another amount
    // after a partial one in the dashboard is another request, never a reused key.
    let step = match refunded_before {
        0 => "refund".to_owned(),
        before => format!("refund-after-{before}"),
    };
    let key = attempt_key(booking_id, &step, payment.provider_attempts);
    let refused = match gateway.refund(&provider_id, amount, &key).await {
        Ok(refund_id) => {
            let txn = db.begin().await?;
            let (booking, payment) = bookings::lock(&txn, booking_id).await?;
            refunded(
                &txn,
                booking,
                payment,
                refunded_before + amount,
                Some(&refund_id),
                RefundSource::Orderly,
                request_id,
            )
            .await?;
            return Ok(wake::commit(db, txn).await?);
        }
        Err(unknown @ ProviderError::Transient(_)) => {
            return unknown_outcome(db, booking_id, &payment, unknown).await;
        }
        Err(refused) => refused,
    };
    // Refused: most likely something was refunded meanwhile (in the provider's dashboard).
    let intent = gateway.retrieve(&provider_id).await?;
    if intent.amount_refunded_cents >= captured {
        return observed(db, booking_id, &intent, request_id).await;
    }
    if intent.amount_refunded_cents > refunded_before {
        // Part of it was refunded meanwhile: record that, and refund the rest next time
        // under a new key (the old one holds the refused amount).
        let txn = db.begin().await?;
        let (booking, payment) = bookings::lock(&txn, booking_id).await?;
        apply_intent(&txn, booking, payment, &intent, request_id).await?;
        bump_attempts(&txn, booking_id, &refused).await?;
        wake::commit(db, txn).await?;
        return Err(ProviderError::Transient(Detail::caused_by(
            "refunded in part at the provider meanwhile; the rest follows",
            refused,
        ))
        .into());
    }
    Err(refused.into())
}

/// The `expire_booking` job: an unpaid booking whose hold ran out expires, unless the
/// provider shows that the customer paid after all (an authorisation whose webhook is late):
/// then the booking is confirmed instead, since its seats were still held. Returns whether
/// it expired.
pub async fn expire_unless_paid(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
    request_id: Option<&str>,
) -> Result<bool, PaymentError> {
    let Some((booking, payment)) = bookings::read(db, booking_id).await? else {
        return Ok(false);
    };
    if booking.status != BookingStatus::PendingPayment {
        return Ok(false);
    }
    let hold_ended = Utc::now().signed_duration_since(booking.hold_expires_at);
    let ask = payment.provider == PaymentProvider::Stripe
        && payment.provider == gateway.provider()
        && (payment.provider_payment_id.is_some() || payment.provider_attempts > 0)
        && hold_ended.to_std().unwrap_or_default() < ASK_PROVIDER_WITHIN;
    if ask {
        let intent = match &payment.provider_payment_id {
            Some(id) => Some(gateway.retrieve(id).await?),
            None => gateway.find(booking_id).await?,
        };
        if let Some(intent) =
            intent.filter(|i| matches!(i.state, IntentState::Authorized | IntentState::Captured))
        {
            tracing::info!(booking.id = %booking_id, "the hold ended, but the provider shows the payment authorised: confirming instead of expiring");
            observed(db, booking_id, &intent, request_id).await?;
            return Ok(false);
        }
    }
    Ok(bookings::expire(db, booking_id, request_id).await?)
}

/// The sweep behind the `expire_booking` jobs: expires (through [`expire_unless_paid`]) up
/// to `limit` unpaid bookings whose hold ended more than `late` ago (their job was lost or
/// is far behind). Returns how many it expired; a booking the provider cannot be asked
/// about now is left for the next sweep.
pub async fn expire_overdue(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    late: Duration,
    limit: u64,
) -> Result<u64, PaymentError> {
    let mut expired = 0;
    for id in bookings::overdue(db, late, limit).await? {
        match expire_unless_paid(db, gateway, id, None).await {
            Ok(true) => {
                tracing::warn!(booking.id = %id, "expired by the sweep: its expire_booking job was late or lost");
                expired += 1;
            }
            Ok(false) => {}
            Err(PaymentError::Provider(e)) => {
                tracing::warn!(booking.id = %id, error = %e, "overdue booking left for the next sweep: the provider could not be asked");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(expired)
}

/// Records what the provider shows of a booking's payment: one short transaction that
/// locks the booking and its payment and applies `intent` to them ([`apply_intent`]).
pub async fn observed(
    db: &DatabaseConnection,
    booking_id: Uuid,
    intent: &Intent,
    request_id: Option<&str>,
) -> Result<(), PaymentError> {
    let txn = db.begin().await?;
    let Some((booking, payment)) = lock_if_any(&txn, booking_id).await? else {
        return Ok(());
    };
    apply_intent(&txn, booking, payment, intent, request_id).await?;
    Ok(wake::commit(db, txn).await?)
}

/// Brings a locked booking and payment in line with the payment as the provider shows it:
/// authorised (the booking is confirmed, or a late authorisation cancelled), captured (the
/// booking paid, or a refund queued for a booking that ended), cancelled, and refunded in
/// part or in full. What already agrees is left alone, so applying the same view twice
/// changes nothing.
pub async fn apply_intent(
    txn: &DatabaseTransaction,
    booking: booking_rows::Model,
    payment: payment_rows::Model,
    intent: &Intent,
    request_id: Option<&str>,
) -> Result<(), PaymentError> {
    let payment = adopt(txn, payment, intent).await?;
    match intent.state {
        IntentState::Authorized => {
            if matches!(
                payment.status,
                PaymentStatus::Creating | PaymentStatus::RequiresPayment
            ) {
                bookings::authorize(txn, booking, payment, request_id).await?;
            }
        }
        IntentState::Captured => {
            let (booking, payment) = captured(txn, booking, payment, intent, request_id).await?;
            if intent.amount_refunded_cents > payment.amount_refunded_cents {
                refunded(
                    txn,
                    booking,
                    payment,
                    intent.amount_refunded_cents,
                    None,
                    RefundSource::Provider,
                    request_id,
                )
                .await?;
            }
        }
        IntentState::Canceled => {
            canceled(txn, booking, payment, "cancelled at the provider").await?
        }
        IntentState::RequiresPayment | IntentState::Processing => {}
    }
    Ok(())
}

/// The provider captured the payment. A confirmed booking becomes `paid` (receipt asked
/// for); a booking that ended meanwhile (cancelled or expired) is owed a refund, queued
/// here as a job. Returns the rows as they are now.
async fn captured(
    txn: &DatabaseTransaction,
    booking: booking_rows::Model,
    payment: payment_rows::Model,
    intent: &Intent,
    request_id: Option<&str>,
) -> Result<(booking_rows::Model, payment_rows::Model), PaymentError> {
    let booking_id = booking.id;
    let payment = if matches!(
        payment.status,
        PaymentStatus::Captured | PaymentStatus::Refunded
    ) {
        payment
    } else {
        let now = Utc::now();
        let amount = match intent.amount_received_cents {
            0 => payment.amount_cents,
            received => received,
        };
        let mut p = payment.into_active_model();
        p.status = Set(PaymentStatus::Captured);
        p.amount_captured_cents = Set(amount);
        p.captured_at = Set(Some(now.into()));
        p.provider_attempts = Set(0);
        p.last_error = Set(None);
        p.updated_at = Set(now.into());
        let payment = p.update(txn).await?;
        tracing::info!(booking.id = %booking_id, payment.amount_cents = amount, "payment captured");
        payment
    };
    let booking = match booking.status {
        BookingStatus::Confirmed | BookingStatus::PendingPayment => {
            bookings::advance(
                txn,
                booking,
                BookingStatus::Paid,
                NotificationKind::PaymentReceipt,
                request_id,
            )
            .await?
        }
        BookingStatus::Cancelled | BookingStatus::Expired => {
            if payment.status == PaymentStatus::Captured
                && payment.amount_refunded_cents < payment.amount_captured_cents
            {
                tracing::warn!(booking.id = %booking_id, booking.status = booking.status.as_str(), "captured at the provider after the booking ended; refunding it");
                outbox::ensure_live_round(
                    txn,
                    |round| RefundPayment { booking_id, round },
                    request_id,
                )
                .await?;
            }
            booking
        }
        BookingStatus::Paid | BookingStatus::Refunded => booking,
    };
    Ok((booking, payment))
}

/// The provider shows `total_cents` refunded of a captured payment. What is new is
/// recorded as a refund of its own (under `refund_id`, or a key made of the payment and the
/// total, so the same refund seen twice is one row), on today's date for the report. In
/// full, the payment is `refunded` and so is the booking: a booking that still held its
/// seats (a refund made in the provider's dashboard) gives them back, and the customer is
/// told. Returns the payment as it is now.
async fn refunded(
    txn: &DatabaseTransaction,
    booking: booking_rows::Model,
    payment: payment_rows::Model,
    total_cents: i64,
    refund_id: Option<&str>,
    source: RefundSource,
    request_id: Option<&str>,
) -> Result<payment_rows::Model, PaymentError> {
    let new_cents = total_cents - payment.amount_refunded_cents;
    if new_cents <= 0 || payment.status != PaymentStatus::Captured {
        return Ok(payment);
    }
    let now = Utc::now();
    let booking_id = booking.id;
    let provider_id = payment.provider_payment_id.clone().unwrap_or_default();
    let row_id = match refund_id {
        Some(id) => id.to_owned(),
        None => format!("{provider_id}:refunded:{total_cents}"),
    };
    txn.execute_raw(stmt(
        &RECORD_REFUND,
        [
            row_id.into(),
            payment.id.into(),
            new_cents.into(),
            payment.currency.clone().into(),
            source.as_str().into(),
            now.into(),
        ],
    ))
    .await?;
    let in_full = total_cents >= payment.amount_captured_cents;
    let mut p = payment.into_active_model();
    p.amount_refunded_cents = Set(total_cents);
    if in_full {
        p.status = Set(PaymentStatus::Refunded);
        p.refunded_at = Set(Some(now.into()));
    }
    p.provider_attempts = Set(0);
    p.last_error = Set(None);
    p.updated_at = Set(now.into());
    let payment = p.update(txn).await?;
    tracing::info!(booking.id = %booking_id, payment.refunded_cents = new_cents, payment.in_full = in_full, refund.source = source.as_str(), "payment refunded");
    if !in_full {
        return Ok(payment);
    }
    match booking.status {
        BookingStatus::Cancelled | BookingStatus::Expired => {
            bookings::advance(
                txn,
                booking,
                BookingStatus::Refunded,
                NotificationKind::BookingRefunded,
                request_id,
            )
            .await?;
        }
        BookingStatus::Paid | BookingStatus::Confirmed => {
            tracing::warn!(booking.id = %booking_id, "refunded in full at the provider: the booking is refunded and its seats return");
            bookings::release(
                txn,
                booking,
                BookingStatus::Refunded,
                NotificationKind::BookingRefunded,
                request_id,
            )
            .await?;
        }
        BookingStatus::PendingPayment | BookingStatus::Refunded => {}
    }
    Ok(payment)
}

/// The provider cancelled the payment. A confirmed booking loses its authorisation (it
/// expires, seats back); one that already ended records the cancellation; one still
/// waiting for payment keeps its hold (its expiry follows).
async fn canceled(
    txn: &DatabaseTransaction,
    booking: booking_rows::Model,
    payment: payment_rows::Model,
    why: &str,
) -> Result<(), PaymentError> {
    if !is_open(payment.status) {
        return Ok(());
    }
    match booking.status {
        BookingStatus::Confirmed => authorization_lost(txn, booking, payment, why).await,
        BookingStatus::PendingPayment => Ok(()),
        _ => record_cancel(txn, payment).await,
    }
}

/// A confirmed booking whose authorisation can no longer be captured: the payment is
/// `failed`, the booking `expired` with its seats back, and the customer told. The caller
/// holds both rows' locks in `txn` and commits.
pub async fn authorization_lost(
    txn: &DatabaseTransaction,
    booking: booking_rows::Model,
    payment: payment_rows::Model,
    why: &str,
) -> Result<(), PaymentError> {
    let booking_id = booking.id;
    let mut p = payment.into_active_model();
    p.status = Set(PaymentStatus::Failed);
    p.last_error = Set(Some(why.to_owned()));
    p.provider_attempts = Set(0);
    p.updated_at = Set(Utc::now().into());
    p.update(txn).await?;
    if booking.status == BookingStatus::Confirmed {
        bookings::release(
            txn,
            booking,
            BookingStatus::Expired,
            NotificationKind::PaymentFailed,
            None,
        )
        .await?;
    }
    tracing::warn!(booking.id = %booking_id, error = %why, "authorisation lost before capture; booking expired");
    Ok(())
}

/// Records a payment cancelled at the provider. The caller holds its lock in `txn` and
/// commits.
pub async fn record_cancel(
    txn: &DatabaseTransaction,
    payment: payment_rows::Model,
) -> Result<(), PaymentError> {
    let now = Utc::now();
    let mut p = payment.into_active_model();
    p.status = Set(PaymentStatus::Cancelled);
    p.cancelled_at = Set(Some(now.into()));
    p.provider_attempts = Set(0);
    p.last_error = Set(None);
    p.updated_at = Set(now.into());
    p.update(txn).await?;
    Ok(())
}

/// A payment whose provider id we never recorded (its creation's answer was lost) takes the
/// provider's, with its client secret.
pub async fn adopt(
    txn: &DatabaseTransaction,
    payment: payment_rows::Model,
    intent: &Intent,
) -> Result<payment_rows::Model, PaymentError> {
    if payment.provider_payment_id.is_some() || intent.provider_payment_id.is_empty() {
        return Ok(payment);
    }
    let creating = payment.status == PaymentStatus::Creating;
    let mut p = payment.into_active_model();
    p.provider_payment_id = Set(Some(intent.provider_payment_id.clone()));
    if intent.client_secret.is_some() {
        p.client_secret = Set(intent.client_secret.clone());
    }
    if creating && intent.state != IntentState::Canceled {
        p.status = Set(PaymentStatus::RequiresPayment);
        p.provider_attempts = Set(0);
    }
    p.updated_at = Set(Utc::now().into());
    Ok(p.update(txn).await?)
}

/// A call whose outcome is unknown: counted, so that the next try reads the provider's
/// state first, unless the payment moved on meanwhile (then the next try decides afresh
/// from what it finds). The job retries.
async fn unknown_outcome(
    db: &DatabaseConnection,
    booking_id: Uuid,
    before: &payment_rows::Model,
    error: ProviderError,
) -> Result<(), PaymentError> {
    let txn = db.begin().await?;
    if let Some((_booking, payment)) = lock_if_any(&txn, booking_id).await?
        && payment.status == before.status
        && payment.provider_attempts == before.provider_attempts
    {
        bump_attempts(&txn, booking_id, &error).await?;
    }
    txn.commit().await?;
    Err(error.into())
}

/// Counts a call whose outcome is unknown (or whose key is spent) on the booking's payment.
async fn bump_attempts(
    txn: &DatabaseTransaction,
    booking_id: Uuid,
    error: &ProviderError,
) -> Result<(), PaymentError> {
    txn.execute_raw(stmt(
        &BUMP_ATTEMPTS,
        [booking_id.into(), error.describe().into()],
    ))
    .await?;
    Ok(())
}

/// Whether a payment may still be authorised, captured or cancelled.
fn is_open(status: PaymentStatus) -> bool {
    matches!(
        status,
        PaymentStatus::Creating | PaymentStatus::RequiresPayment | PaymentStatus::Authorized
    )
}

/// Whether a booking in `status` is owed back what was captured: it ended.
pub fn refund_owed(status: BookingStatus) -> bool {
    matches!(status, BookingStatus::Cancelled | BookingStatus::Expired)
}

fn provider_id_of(
    payment: &payment_rows::Model,
    missing: &'static str,
) -> Result<String, PaymentError> {
    payment
        .provider_payment_id
        .clone()
        .ok_or(PaymentError::Inconsistent(missing))
}

/// [`bookings::lock`], with a booking that no longer exists as `None` (a booking the
/// request withdrew after the provider refused its payment).
async fn lock_if_any(
    txn: &DatabaseTransaction,
    booking_id: Uuid,
) -> Result<Option<(booking_rows::Model, payment_rows::Model)>, PaymentError> {
    match bookings::lock(txn, booking_id).await {
        Ok(locked) => Ok(Some(locked)),
        Err(BookingError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

sql! {
    /// Refund `$1` of payment `$2`: `$3` cents in `$4`, made by `$5` at `$6`; once.
    RECORD_REFUND = "INSERT INTO payment_refunds (id, payment_id, amount_cents, currency, source, refunded_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";

    /// One more provider call of booking `$1`'s payment whose outcome is unknown, with `$2`.
    BUMP_ATTEMPTS = "UPDATE payments SET provider_attempts = provider_attempts + 1, last_error = $2,
                updated_at = now()
          WHERE booking_id = $1";
}
