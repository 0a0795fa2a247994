//! The payment state machine: create, capture, cancel, refund. Provider calls carry
//! idempotency keys derived from the booking, and each step first checks the state it
//! moves from, so a retried job never charges, cancels or refunds twice.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseConnection, IntoActiveModel, Set, TransactionTrait};
use uuid::Uuid;

use super::bookings::{self, BookingError};
use crate::entities::bookings::BookingStatus;
use crate::entities::notifications::NotificationKind;
use crate::entities::payments::PaymentStatus;
use crate::jobs::JobError;
use crate::providers::ProviderError;
use crate::providers::payments::{IntentState, NewPayment, PaymentGateway};

impl From<BookingError> for JobError {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::Db(db) => db.into(),
            other => JobError::Permanent(other.to_string()),
        }
    }
}

/// The provider idempotency key of a booking's payment step.
pub fn key(booking_id: Uuid, step: &str) -> String {
    format!("orderly-booking-{booking_id}-{step}")
}

/// Creates the booking's payment at the provider while the booking request is served.
/// When the provider cannot be reached, the `create_payment` job queued with the booking
/// takes over and the payment stays `creating` (the frontend polls until the client secret
/// appears).
pub async fn start(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
    request_id: Option<&str>,
) -> Result<(), BookingError> {
    match create_at_provider(db, gateway, booking_id, request_id).await {
        Ok(()) => Ok(()),
        Err(JobError::Transient(e)) => {
            tracing::warn!(booking.id = %booking_id, error = %e, "payment provider unreachable; the create_payment job will create the payment");
            Ok(())
        }
        Err(JobError::Permanent(e)) => {
            tracing::warn!(booking.id = %booking_id, error = %e, "payment refused by the provider");
            Ok(())
        }
    }
}

/// The `create_payment` job, and the first try of [`start`]. The provider call carries the
/// same idempotency key every time, so calling again returns the same payment.
pub async fn create_at_provider(
    db: &DatabaseConnection,
    gateway: &dyn PaymentGateway,
    booking_id: Uuid,
    request_id: Option<&str>,
) -> Result<(), JobError> {
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
            return Err(JobError::Permanent(e));
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
) -> Result<(), JobError> {
    let txn = db.begin().await?;
    let (booking, payment) = bookings::lock(&txn, booking_id).await?;
    if booking.status != BookingStatus::Confirmed || payment.status != PaymentStatus::Authorized {
        return Ok(());
    }
    let provider_id = payment
        .provider_payment_id
        .clone()
        .ok_or_else(|| JobError::Permanent("an authorised payment without a provider id".into()))?;
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
) -> Result<(), JobError> {
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
) -> Result<(), JobError> {
    let txn = db.begin().await?;
    let (booking, payment) = bookings::lock(&txn, booking_id).await?;
    if payment.status != PaymentStatus::Captured {
        return Ok(());
    }
    let provider_id = payment
        .provider_payment_id
        .clone()
        .ok_or_else(|| JobError::Permanent("a captured payment without a provider id".into()))?;
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
