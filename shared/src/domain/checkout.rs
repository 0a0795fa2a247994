//! What a customer's booking request does: the booking ([`bookings::create`]), then its
//! payment at a provider that is not instant ([`payments::start`]).

use std::time::Duration;

use sea_orm::DatabaseConnection;

use super::bookings::{self, BookingError, Created, NewBooking};
use super::payments;
use crate::providers::payments::PaymentGateway;

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
    payments::start(db, gateway, created.booking.id, request_id.as_deref()).await;
    Ok((created, true))
}
