//! The payment state machine: create, capture, cancel, refund. Provider calls carry
//! idempotency keys derived from the booking, and each step first checks the state it
//! moves from, so a retried job never charges, cancels or refunds twice. It moves the
//! booking through [`bookings`]; bookings never call back into payments.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseConnection, IntoActiveModel, Set, TransactionTrait};
use uuid::Uuid;

use super::bookings::{self, BookingError};
use crate::entities::bookings::BookingStatus;
use crate::entities::notifications::NotificationKind;
use crate::entities::payments::PaymentStatus;
use crate::providers::ProviderError;
use crate::providers::payments::{IntentState, NewPayment, PaymentGateway, idempotency_key as key};

/// Why a payment step did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The booking could not be read or moved.
    #[error(transparent)]
    Booking(#[from] BookingError),
    /// The provider refused (permanent) or could not be reached (transient).
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
/// Nothing here fails the request: when the provider (or the database) cannot be reached,
/// the `create_payment` job queued with the booking takes over and the payment stays
/// `creating` (the frontend polls until the client secret appears); a refusal is recorded
/// on the payment.
pub async fn start(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
    request_id: Option<&str>,
) {
    if let Err(e) = create_at_provider(db, gateway, booking_id, request_id).await {
        tracing::warn!(booking.id = %booking_id, error = %e, "payment not created with the booking; the create_payment job takes over");
    }
}

/// The `create_payment` job, and the first try of [`start`]. The provider call carries the
/// same idempotency key every time, so calling again returns the same payment.
pub async fn create_at_provider(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
    request_id: Option<&str>,
) -> Result<(), PaymentError> {
    let payment = {
        let txn = db.begin().await?;
        let (booking, payment) = bookings::lock(&txn, booking_id).await?;
        let open = matches!(
            payment.status,
            PaymentStatus::Creating | PaymentStatus::RequiresPayment
        );
        if booking.status != BookingStatus::PendingPayment || !open {
            return Ok(());
        }
        payment
    };
    let created = gateway
        .create(&NewPayment {
            booking_id,
            amount_cents: payment.amount_cents,
            currency: payment.currency.clone(),
            idempotency_key: key(booking_id, "create"),
        })
        .await;
    let txn = db.begin().await?;
    let (booking, payment) = bookings::lock(&txn, booking_id).await?;
    let now = Utc::now();
    let created = match created {
        Ok(created) => created,
        Err(ProviderError::Permanent(e)) => {
            if payment.status == PaymentStatus::Creating {
                let mut p = payment.into_active_model();
                p.status = Set(PaymentStatus::Failed);
                p.last_error = Set(Some(e.clone()));
                p.updated_at = Set(now.into());
                p.update(&txn).await?;
                txn.commit().await?;
            }
            return Err(ProviderError::Permanent(e).into());
        }
        Err(e) => return Err(e.into()),
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
        p.provider_payment_id = Set(Some(created.provider_payment_id));
        p.client_secret = Set(created.client_secret);
        p.status = Set(PaymentStatus::RequiresPayment);
        p.updated_at = Set(now.into());
        p.update(&txn).await?;
    }
    txn.commit().await?;
    if created.state == IntentState::Authorized {
        bookings::payment_authorized(db, booking_id, request_id).await?;
    }
    Ok(())
}

/// The `capture_payment` job: a confirmed booking's payment is captured and the booking
/// becomes `paid`; a receipt follows.
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
    // The row locks are held across the call, so a cancellation waits for the capture.
    gateway
        .capture(&provider_id, &key(booking_id, "capture"))
        .await?;
    let now = Utc::now();
    let amount = payment.amount_cents;
    let mut p = payment.into_active_model();
    p.status = Set(PaymentStatus::Captured);
    p.amount_captured_cents = Set(amount);
    p.captured_at = Set(Some(now.into()));
    p.updated_at = Set(now.into());
    p.update(&txn).await?;
    bookings::advance(
        &txn,
        booking,
        BookingStatus::Paid,
        NotificationKind::PaymentReceipt,
        request_id,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(booking.id = %booking_id, payment.amount_cents = amount, "payment captured");
    Ok(())
}

/// The `cancel_payment` job: a payment that was never captured is cancelled at the provider.
pub async fn cancel(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
) -> Result<(), PaymentError> {
    let txn = db.begin().await?;
    let (_, payment) = bookings::lock(&txn, booking_id).await?;
    if !matches!(
        payment.status,
        PaymentStatus::Creating | PaymentStatus::RequiresPayment | PaymentStatus::Authorized
    ) {
        return Ok(());
    }
    if let Some(provider_id) = &payment.provider_payment_id {
        gateway
            .cancel(provider_id, &key(booking_id, "cancel"))
            .await?;
    }
    let now = Utc::now();
    let mut p = payment.into_active_model();
    p.status = Set(PaymentStatus::Cancelled);
    p.cancelled_at = Set(Some(now.into()));
    p.updated_at = Set(now.into());
    p.update(&txn).await?;
    txn.commit().await?;
    Ok(())
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
    let (booking, payment) = bookings::lock(&txn, booking_id).await?;
    if payment.status != PaymentStatus::Captured {
        return Ok(());
    }
    let provider_id = payment
        .provider_payment_id
        .clone()
        .ok_or(PaymentError::Inconsistent(
            "a captured payment without a provider id",
        ))?;
    let captured = payment.amount_captured_cents;
    let amount = captured - payment.amount_refunded_cents;
    gateway
        .refund(&provider_id, amount, &key(booking_id, "refund"))
        .await?;
    let now = Utc::now();
    let mut p = payment.into_active_model();
    p.status = Set(PaymentStatus::Refunded);
    p.amount_refunded_cents = Set(captured);
    p.refunded_at = Set(Some(now.into()));
    p.updated_at = Set(now.into());
    p.update(&txn).await?;
    bookings::advance(
        &txn,
        booking,
        BookingStatus::Refunded,
        NotificationKind::BookingRefunded,
        request_id,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
