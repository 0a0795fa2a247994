//! What the payment provider tells us (Stripe's webhook events), through an inbox: a
//! verified event is stored whole with its id on receipt ([`receive`]) together with the
//! `apply_payment_event` job that applies it ([`apply_stored`]), and the provider is
//! answered at once. An event this version cannot read (a newer API version) is never
//! refused: its job dies with the reason, visible and retryable from the dashboard once the
//! code reads it. An event id seen before is acknowledged and ignored. Events arrive late,
//! twice and out of order; the booking's and the payment's states decide what an event
//! still means, never the order of arrival.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter, Set, TransactionTrait,
};
use uuid::Uuid;

use super::bookings;
use super::notifications::notify;
use super::payments::{self, PaymentError};
use orderly_db::bookings::BookingStatus;
use orderly_db::notifications::{NotificationChannel, NotificationKind};
use orderly_db::payments::{self as payment_rows};
use orderly_db::processed_webhook_events as inbox;
use orderly_db::sql;
use orderly_db::sql::stmt;
use orderly_jobs::{ApplyPaymentEvent, outbox, wake};
use orderly_providers::payments::{EventKind, PaymentEvent};

/// What receiving an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Stored, and its job queued.
    Stored,
    /// Seen before: nothing done.
    Replayed,
}

/// What applying a stored event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied (it may have found nothing left to change).
    Applied,
    /// Applied before: nothing done.
    Replayed,
    /// No payment of ours: acknowledged.
    UnknownPayment,
}

/// Stores a verified event (its raw body, id and type) with the job that applies it, in one
/// transaction; an id seen before changes nothing.
pub async fn receive(
    db: &DatabaseConnection,
    event_id: &str,
    event_type: &str,
    payload: &str,
) -> Result<Received, sea_orm::DbErr> {
    let txn = db.begin().await?;
    let first = txn
        .execute_raw(stmt(
            &RECEIVE,
            [event_id.into(), event_type.into(), payload.into()],
        ))
        .await?
        .rows_affected()
        == 1;
    if !first {
        return Ok(Received::Replayed);
    }
    outbox::enqueue(
        &txn,
        &ApplyPaymentEvent {
            event_id: event_id.to_owned(),
        },
        None,
        None,
    )
    .await?;
    wake::commit(db, txn).await?;
    tracing::info!(event.id = %event_id, event.type = %event_type, "payment event received");
    Ok(Received::Stored)
}

/// The `apply_payment_event` job: reads the stored event with `parse` (an error is
/// [`PaymentError::Unreadable`]: the job dies with it) and applies it once, in one
/// transaction with the mark that it was applied.
pub async fn apply_stored(
    db: &DatabaseConnection,
    event_id: &str,
    parse: impl Fn(&str) -> Result<PaymentEvent, String>,
) -> Result<Applied, PaymentError> {
    let Some(stored) = inbox::Entity::find_by_id(event_id.to_owned())
        .one(db)
        .await?
    else {
        return Err(PaymentError::Unreadable(format!(
            "event {event_id} is not in the inbox"
        )));
    };
    if stored.applied_at.is_some() {
        return Ok(Applied::Replayed);
    }
    let payload = stored.payload.unwrap_or_default();
    let event = parse(&payload).map_err(PaymentError::Unreadable)?;
    apply(db, event_id, &event).await
}

/// Applies `event`, stored as `event_id`, once, in one transaction with the mark that it was
/// applied.
async fn apply(
    db: &DatabaseConnection,
    event_id: &str,
    event: &PaymentEvent,
) -> Result<Applied, PaymentError> {
    let txn = db.begin().await?;
    let first = txn
        .execute_raw(stmt(&MARK_APPLIED, [event_id.into()]))
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
    match &event.kind {
        EventKind::PaymentFailed { reason } => {
            if booking.status == BookingStatus::PendingPayment {
                let payment = payments::adopt(&txn, payment, &event.intent).await?;
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
        EventKind::Disputed { reason } => {
            if payment.disputed_at.is_none() {
                let mut p = payment.into_active_model();
                p.disputed_at = Set(Some(Utc::now().into()));
                p.dispute_reason = Set(Some(reason.clone()));
                p.updated_at = Set(Utc::now().into());
                p.update(&txn).await?;
                metrics::counter!("payment_disputes_total").increment(1);
                tracing::warn!(booking.id = %booking_id, dispute.reason = %reason, "the customer disputed the charge");
            }
        }
        // The rest says where the payment stands at the provider: follow it.
        EventKind::Authorized
        | EventKind::Succeeded
        | EventKind::Canceled
        | EventKind::Refunded
        | EventKind::Other => {
            payments::apply_intent(&txn, booking, payment, &event.intent, None).await?;
        }
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
    if !event.intent.provider_payment_id.is_empty() {
        let by_id = payment_rows::Entity::find()
            .filter(payment_rows::Column::ProviderPaymentId.eq(&event.intent.provider_payment_id))
            .one(txn)
            .await?;
        if let Some(payment) = by_id {
            return Ok(Some(payment.booking_id));
        }
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

sql! {
    /// Event `$1` of type `$2` with body `$3`, unless it was stored before.
    RECEIVE = "INSERT INTO processed_webhook_events (event_id, event_type, payload) VALUES ($1, $2, $3)
             ON CONFLICT (event_id) DO NOTHING";

    /// Event `$1` is applied now, unless it was before.
    MARK_APPLIED = "UPDATE processed_webhook_events SET applied_at = now()
              WHERE event_id = $1 AND applied_at IS NULL";
}
