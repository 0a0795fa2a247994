//! The payment state machine: create, capture, cancel, refund. Each step locks the booking
//! and its payment, checks the state it moves from, and calls the provider with an
//! idempotency key derived from the booking and the step, so a retried job never charges,
//! cancels or refunds twice. It moves the booking through [`bookings`]; bookings never
//! call back into payments.
//!
//! A call whose outcome is unknown (a 5xx, a lost answer) is counted on the payment
//! (`provider_attempts`). The provider replays what it stored under a key for a day, a 500
//! included, so the next try first reads the payment at the provider: if the earlier call
//! took effect, that is recorded without calling again; if the state proves it did nothing,
//! the call is made again under a new key (`…-capture-2`).

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, DatabaseTransaction, IntoActiveModel, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::bookings::{self, BookingError};
use crate::entities::bookings::{self as booking_rows, BookingStatus};
use crate::entities::notifications::NotificationKind;
use crate::entities::payments::{self as payment_rows, PaymentStatus};
use crate::jobs::wake;
use crate::providers::ProviderError;
use crate::providers::payments::{
    Intent, IntentState, NewPayment, PaymentGateway, attempt_key, idempotency_key as key,
};

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
    /// Database trouble.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Creates the booking's payment at the provider while the booking request is served.
/// When the provider (or the database) cannot be reached, the `create_payment` job queued
/// with the booking takes over and the payment stays `creating` (the frontend polls until
/// the client secret appears). A refusal (a card-level error) is returned: the request
/// answers it and keeps nothing.
pub async fn start(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
    request_id: Option<&str>,
) -> Result<(), ProviderError> {
    match create_at_provider(db, gateway, booking_id, request_id).await {
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
    let payment = {
        let txn = db.begin().await?;
        let Some((booking, payment)) = lock_if_any(&txn, booking_id).await? else {
            return Ok(());
        };
        if booking.status != BookingStatus::PendingPayment
            || payment.status != PaymentStatus::Creating
        {
            return Ok(());
        }
        payment
    };
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
            // Released while the provider answered: release what was just made.
            txn.commit().await?;
            gateway
                .cancel(&created.provider_payment_id, &key(booking_id, "cancel"))
                .await?;
            return Ok(());
        }
        // Another run (the request's own try, with the same idempotency key) got the same
        // payment through first: it is live, so leave it alone.
        _ => return Ok(()),
    }
    if payment.status == PaymentStatus::Creating {
        let mut p = payment.into_active_model();
        p.provider_payment_id = Set(Some(created.provider_payment_id.clone()));
        p.client_secret = Set(created.client_secret.clone());
        p.status = Set(PaymentStatus::RequiresPayment);
        p.provider_attempts = Set(0);
        p.last_error = Set(None);
        p.updated_at = Set(Utc::now().into());
        p.update(&txn).await?;
    }
    txn.commit().await?;
    if created.state == IntentState::Authorized {
        bookings::payment_authorized(db, booking_id, request_id).await?;
    }
    Ok(())
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
    let txn = db.begin().await?;
    let (booking, payment) = bookings::lock(&txn, booking_id).await?;
    if booking.status != BookingStatus::Confirmed || payment.status != PaymentStatus::Authorized {
        return Ok(());
    }
    let provider_id = payment
        .provider_payment_id
        .clone()
        .ok_or(PaymentError::Inconsistent(
            "an authorised payment without a provider id",
        ))?;
    // The row locks are held across the calls, so a cancellation waits for the capture.
    if payment.provider_attempts > 0 {
        let intent = gateway.retrieve(&provider_id).await?;
        match intent.state {
            IntentState::Captured => {
                record_capture(&txn, booking, payment, &intent, request_id).await?;
                return Ok(wake::commit(db, txn).await?);
            }
            IntentState::Authorized => {}
            IntentState::Canceled | IntentState::RequiresPayment | IntentState::Processing => {
                authorization_lost(&txn, booking, payment, "the authorisation is gone").await?;
                return Ok(wake::commit(db, txn).await?);
            }
        }
    }
    let key = attempt_key(booking_id, "capture", payment.provider_attempts);
    let why = match gateway.capture(&provider_id, &key).await {
        Ok(intent) => {
            record_capture(&txn, booking, payment, &intent, request_id).await?;
            return Ok(wake::commit(db, txn).await?);
        }
        Err(ProviderError::State(why)) => {
            let intent = gateway.retrieve(&provider_id).await?;
            if intent.state == IntentState::Captured {
                record_capture(&txn, booking, payment, &intent, request_id).await?;
                return Ok(wake::commit(db, txn).await?);
            }
            why
        }
        Err(ProviderError::Permanent(why)) => why,
        Err(unknown @ ProviderError::Transient(_)) => {
            return unknown_outcome(txn, payment, unknown).await;
        }
    };
    authorization_lost(&txn, booking, payment, &why).await?;
    Ok(wake::commit(db, txn).await?)
}

/// Records a capture the provider made: the payment `captured`, the booking `paid`, and the
/// receipt asked for. The caller holds both rows' locks in `txn` and commits.
pub async fn record_capture(
    txn: &DatabaseTransaction,
    booking: booking_rows::Model,
    payment: payment_rows::Model,
    intent: &Intent,
    request_id: Option<&str>,
) -> Result<(), PaymentError> {
    let now = Utc::now();
    let amount = match intent.amount_received_cents {
        0 => payment.amount_cents,
        received => received,
    };
    let booking_id = booking.id;
    let mut p = payment.into_active_model();
    p.status = Set(PaymentStatus::Captured);
    p.amount_captured_cents = Set(amount);
    p.captured_at = Set(Some(now.into()));
    p.provider_attempts = Set(0);
    p.last_error = Set(None);
    p.updated_at = Set(now.into());
    p.update(txn).await?;
    bookings::advance(
        txn,
        booking,
        BookingStatus::Paid,
        NotificationKind::PaymentReceipt,
        request_id,
    )
    .await?;
    tracing::info!(booking.id = %booking_id, payment.amount_cents = amount, "payment captured");
    Ok(())
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

/// A call whose outcome is unknown: counted, so that the next try reads the provider's
/// state first; the job retries.
async fn unknown_outcome(
    txn: DatabaseTransaction,
    payment: payment_rows::Model,
    error: ProviderError,
) -> Result<(), PaymentError> {
    let attempts = payment.provider_attempts + 1;
    let mut p = payment.into_active_model();
    p.provider_attempts = Set(attempts);
    p.last_error = Set(Some(error.to_string()));
    p.updated_at = Set(Utc::now().into());
    p.update(&txn).await?;
    txn.commit().await?;
    Err(error.into())
}

/// The `cancel_payment` job: a payment that was never captured is cancelled at the
/// provider. One captured there after all (its capture's answer was lost) is refunded
/// instead.
pub async fn cancel(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
) -> Result<(), PaymentError> {
    let txn = db.begin().await?;
    let Some((booking, payment)) = lock_if_any(&txn, booking_id).await? else {
        return Ok(());
    };
    if !matches!(
        payment.status,
        PaymentStatus::Creating | PaymentStatus::RequiresPayment | PaymentStatus::Authorized
    ) {
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
        record_cancel(&txn, payment).await?;
        return Ok(txn.commit().await?);
    };
    if payment.provider_attempts > 0 {
        let intent = gateway.retrieve(&provider_id).await?;
        match intent.state {
            IntentState::Canceled => {
                record_cancel(&txn, payment).await?;
                return Ok(txn.commit().await?);
            }
            IntentState::Captured => {
                return refund_instead(db, txn, gateway, booking, payment, &intent).await;
            }
            IntentState::Authorized | IntentState::RequiresPayment | IntentState::Processing => {}
        }
    }
    let key = attempt_key(booking_id, "cancel", payment.provider_attempts);
    match gateway.cancel(&provider_id, &key).await {
        Ok(_) => {
            record_cancel(&txn, payment).await?;
            Ok(txn.commit().await?)
        }
        Err(ProviderError::State(why)) => {
            let intent = gateway.retrieve(&provider_id).await?;
            match intent.state {
                IntentState::Canceled => {
                    record_cancel(&txn, payment).await?;
                    Ok(txn.commit().await?)
                }
                IntentState::Captured => {
                    refund_instead(db, txn, gateway, booking, payment, &intent).await
                }
                _ => Err(ProviderError::State(why).into()),
            }
        }
        Err(ProviderError::Permanent(why)) => Err(ProviderError::Permanent(why).into()),
        Err(unknown @ ProviderError::Transient(_)) => unknown_outcome(txn, payment, unknown).await,
    }
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

/// A payment to be cancelled turned out captured at the provider: it is recorded as
/// captured, then refunded in full under the booking's `refund` key.
async fn refund_instead(
    db: &DatabaseConnection,
    txn: DatabaseTransaction,
    gateway: &dyn PaymentGateway,
    booking: booking_rows::Model,
    payment: payment_rows::Model,
    intent: &Intent,
) -> Result<(), PaymentError> {
    tracing::warn!(booking.id = %booking.id, "a payment to cancel was captured at the provider; refunding it");
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
    p.updated_at = Set(now.into());
    let payment = p.update(&txn).await?;
    refund_locked(db, txn, gateway, booking, payment, None).await
}

/// The `refund_payment` job: a captured payment of a cancelled booking is refunded and the
/// booking becomes `refunded`.
pub async fn refund(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
    request_id: Option<&str>,
) -> Result<(), PaymentError> {
    let txn = db.begin().await?;
    let Some((booking, payment)) = lock_if_any(&txn, booking_id).await? else {
        return Ok(());
    };
    if payment.status != PaymentStatus::Captured {
        return Ok(());
    }
    refund_locked(db, txn, gateway, booking, payment, request_id).await
}

async fn refund_locked(
    db: &DatabaseConnection,
    txn: DatabaseTransaction,
    gateway: &dyn PaymentGateway,
    booking: booking_rows::Model,
    payment: payment_rows::Model,
    request_id: Option<&str>,
) -> Result<(), PaymentError> {
    let provider_id = payment
        .provider_payment_id
        .clone()
        .ok_or(PaymentError::Inconsistent(
            "a captured payment without a provider id",
        ))?;
    let captured = payment.amount_captured_cents;
    if payment.provider_attempts > 0 {
        let intent = gateway.retrieve(&provider_id).await?;
        if intent.amount_refunded_cents >= captured {
            record_refund(&txn, booking, payment, request_id).await?;
            return Ok(wake::commit(db, txn).await?);
        }
    }
    let amount = captured - payment.amount_refunded_cents;
    let key = attempt_key(booking.id, "refund", payment.provider_attempts);
    match gateway.refund(&provider_id, amount, &key).await {
        Ok(_) => {
            record_refund(&txn, booking, payment, request_id).await?;
            Ok(wake::commit(db, txn).await?)
        }
        Err(ProviderError::State(why)) => {
            let intent = gateway.retrieve(&provider_id).await?;
            if intent.amount_refunded_cents >= captured {
                record_refund(&txn, booking, payment, request_id).await?;
                return Ok(wake::commit(db, txn).await?);
            }
            Err(ProviderError::State(why).into())
        }
        Err(ProviderError::Permanent(why)) => Err(ProviderError::Permanent(why).into()),
        Err(unknown @ ProviderError::Transient(_)) => unknown_outcome(txn, payment, unknown).await,
    }
}

/// Records a refund the provider made: the payment `refunded`, and a cancelled booking
/// `refunded` with its customer told. The caller holds both rows' locks in `txn` and
/// commits.
pub async fn record_refund(
    txn: &DatabaseTransaction,
    booking: booking_rows::Model,
    payment: payment_rows::Model,
    request_id: Option<&str>,
) -> Result<(), PaymentError> {
    let now = Utc::now();
    let booking_id = booking.id;
    let captured = payment.amount_captured_cents;
    let mut p = payment.into_active_model();
    p.status = Set(PaymentStatus::Refunded);
    p.amount_refunded_cents = Set(captured);
    p.refunded_at = Set(Some(now.into()));
    p.provider_attempts = Set(0);
    p.last_error = Set(None);
    p.updated_at = Set(now.into());
    p.update(txn).await?;
    if booking.status == BookingStatus::Cancelled {
        bookings::advance(
            txn,
            booking,
            BookingStatus::Refunded,
            NotificationKind::BookingRefunded,
            request_id,
        )
        .await?;
    }
    tracing::info!(booking.id = %booking_id, payment.amount_cents = captured, "payment refunded");
    Ok(())
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
