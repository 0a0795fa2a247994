//! What a customer's booking request does: the booking ([`bookings::create`]), then its
//! payment at the provider ([`payments::start`], every provider alike); a payment the
//! provider refuses outright withdraws the booking ([`bookings::withdraw`]).

use std::time::Duration;

use sea_orm::DatabaseConnection;

use super::bookings::{self, BookingError, Created, NewBooking};
use super::payments;
use orderly_providers::payments::PaymentGateway;

/// Books for a customer's request: two short transactions, the booking's and the one that
/// records the provider's answer, with the provider called between them. Returns what
/// [`bookings::create`] made; the payment step has changed it since (read it again).
pub async fn book(
    db: &DatabaseConnection,
    hold: Duration,
    gateway: &dyn PaymentGateway,
    new: NewBooking,
) -> Result<Created, BookingError> {
    let request_id = new.request_id.clone();
    let created = bookings::create(db, hold, gateway, new).await?;
    if let Err(refused) = payments::start(db, gateway, &created, request_id.as_deref()).await {
        bookings::withdraw(db, created.booking.id).await?;
        return Err(BookingError::Payment(refused));
    }
    Ok(created)
}
