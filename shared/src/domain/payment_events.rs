//! What the payment provider tells us (Stripe's webhook events, verified by the caller),
//! applied once each: the event id is recorded in `processed_webhook_events` in the same
//! transaction as its effect, so a replay changes nothing. Events arrive late, twice and
//! out of order; the booking's and the payment's states decide what an event still means,
//! never the order of arrival.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter, Set, Statement, TransactionTrait,
};
use uuid::Uuid;

use super::bookings;
use super::notifications::notify;
use super::payments::{self, PaymentError};
use crate::entities::bookings::BookingStatus;
use crate::entities::notifications::{NotificationChannel, NotificationKind};
use crate::entities::payments::{self as payment_rows, PaymentStatus};
use crate::jobs::wake;
use crate::providers::payments::{Intent, IntentState};

/// An event about one payment.
#[derive(Debug, Clone)]
pub struct PaymentEvent {
    /// The provider's event id (`evt_...`): applied once.
    pub id: String,
    /// The provider's event type (`payment_intent.succeeded`), for the record and the log.
    pub event_type: String,
    /// What happened.
    pub kind: EventKind,
    /// The payment as the event shows it.
    pub intent: Intent,
    /// `metadata[booking_id]`, when present: finds a payment whose id we never recorded
    /// (its creation's answer was lost).
    pub booking_id: Option<Uuid>,
}

/// What an event says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The customer's payment is authorised and can be captured.
    Authorized,
    /// A payment attempt failed (declined card); the customer may try again.
    PaymentFailed {
        /// The provider's reason.
        reason: String,
    },
    /// The payment was captured.
    Succeeded,
    /// The payment was cancelled.
    Canceled,
    /// The charge was refunded (in part or in full).
    Refunded,
    /// Any other event: recorded and acknowledged.
    Other,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied (it may have found nothing left to change).
    Applied,
    /// Seen before: nothing done.
    Replayed,
    /// No payment of ours: recorded and acknowledged.
    UnknownPayment,
}

/// Applies `event` once, in one transaction with the record of its id.
pub async fn apply(db: &DatabaseConnection, event: &PaymentEvent) -> Result<Applied, PaymentError> {
    let txn = db.begin().await?;
    let first = txn
        .execute_raw(Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "INSERT INTO processed_webhook_events (event_id, event_type) VALUES ($1, $2)
             ON CONFLICT (event_id) DO NOTHING",
            [event.id.clone().into(), event.event_type.clone().into()],
        ))
        .await?
        .rows_affected()
        == 1;
    if !first {
        return Ok(Applied::Replayed);
    }
    if event.kind == EventKind::Other {
        txn.commit().await?;
        return Ok(Applied::Applied);
    }
    let Some(booking_id) = booking_of(&txn, event).await? else {
        txn.commit().await?;
        tracing::warn!(event.id = %event.id, event.type = %event.event_type, payment.provider_id = %event.intent.provider_payment_id, "payment event for a payment we do not know; acknowledged");
        return Ok(Applied::UnknownPayment);
    };
    let (booking, payment) = bookings::lock(&txn, booking_id).await?;
    let payment = adopt(&txn, payment, &event.intent).await?;
    match &event.kind {
        EventKind::Authorized => {
            bookings::authorize(&txn, booking, payment, None).await?;
        }
        EventKind::PaymentFailed { reason } => {
            if booking.status == BookingStatus::PendingPayment {
                let customer_id = booking.customer_id;
                let mut p = payment.into_active_model();
                p.last_error = Set(Some(reason.clone()));
                p.updated_at = Set(Utc::now().into());
                p.update(&txn).await?;
                notify(
                    &txn,
                    booking_id,
                    customer_id,
                    NotificationChannel::Email,
                    NotificationKind::PaymentFailed,
                    None,
                )
                .await?;
            }
        }
        EventKind::Succeeded => {
            // A capture whose answer never reached us (the job then finds it done).
            if booking.status == BookingStatus::Confirmed
                && payment.status == PaymentStatus::Authorized
            {
                payments::record_capture(&txn, booking, payment, &event.intent, None).await?;
            }
        }
        EventKind::Canceled => {
            let open = matches!(
                payment.status,
                PaymentStatus::Creating
                    | PaymentStatus::RequiresPayment
                    | PaymentStatus::Authorized
            );
            if open && booking.status == BookingStatus::Confirmed {
                // Cancelled at the provider before we captured (the authorisation expired).
                payments::authorization_lost(&txn, booking, payment, "cancelled at the provider")
                    .await?;
            } else if open && booking.status != BookingStatus::PendingPayment {
                payments::record_cancel(&txn, payment).await?;
            }
            // A booking still waiting for payment keeps its hold; its expiry follows.
        }
        EventKind::Refunded => {
            if payment.status == PaymentStatus::Captured
                && event.intent.amount_refunded_cents >= payment.amount_captured_cents
            {
                payments::record_refund(&txn, booking, payment, None).await?;
            }
        }
        EventKind::Other => {}
    }
    wake::commit(db, txn).await?;
    tracing::info!(event.id = %event.id, event.type = %event.event_type, booking.id = %booking_id, "payment event applied");
    Ok(Applied::Applied)
}

/// The booking whose payment the event is about: by the provider's payment id, else by
/// the booking id in its metadata.
async fn booking_of(
    txn: &DatabaseTransaction,
    event: &PaymentEvent,
) -> Result<Option<Uuid>, PaymentError> {
    let by_id = payment_rows::Entity::find()
        .filter(payment_rows::Column::ProviderPaymentId.eq(&event.intent.provider_payment_id))
        .one(txn)
        .await?;
    if let Some(payment) = by_id {
        return Ok(Some(payment.booking_id));
    }
    let Some(booking_id) = event.booking_id else {
        return Ok(None);
    };
    let by_booking = payment_rows::Entity::find()
        .filter(payment_rows::Column::BookingId.eq(booking_id))
        .filter(payment_rows::Column::ProviderPaymentId.is_null())
        .one(txn)
        .await?;
    Ok(by_booking.map(|p| p.booking_id))
}

/// A payment whose provider id we never recorded (its creation's answer was lost) takes the
/// event's, with its client secret.
async fn adopt(
    txn: &DatabaseTransaction,
    payment: payment_rows::Model,
    intent: &Intent,
) -> Result<payment_rows::Model, PaymentError> {
    if payment.provider_payment_id.is_some() {
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
