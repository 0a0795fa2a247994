//! What a customer's booking request does: the booking ([`bookings::create`]), then its
//! payment at a provider that is not instant ([`payments::start`]); a payment the provider
//! refuses outright withdraws the booking ([`bookings::withdraw`]).

use std::time::Duration;

use sea_orm::DatabaseConnection;

use super::bookings::{self, BookingError, Created, NewBooking};
use super::payments;
use orderly_providers::payments::PaymentGateway;

/// Books for a customer's request. Returns what [`bookings::create`] made and whether the
/// booking changed after it (the payment step ran), so the caller knows whether to read
/// it again.
pub async fn book(
    db: &DatabaseConnection,
    hold: Duration,
    gateway: &dyn PaymentGateway,
    new: NewBooking,
) -> Result<(Created, bool), BookingError> {
    let request_id = new.request_id.clone();
    let created = bookings::create(db, hold, gateway, new).await?;
    if gateway.is_instant() {
        return Ok((created, false));
    }
    let booking_id = created.booking.id;
    if let Err(refused) = payments::start(db, gateway, booking_id, request_id.as_deref()).await {
        bookings::withdraw(db, booking_id).await?;
        return Err(BookingError::Payment(refused));
    }
    Ok((created, true))
}
