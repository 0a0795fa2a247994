//! What the e-mail templates are given. Amounts are in the currency's minor unit (the
//! templates format them with `money`), timestamps RFC 3339 (`datetime`), days ISO (`date`).

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Serialize;
use uuid::Uuid;

use orderly_db::bookings::{self, BookingStatus};
use orderly_db::listings;

/// The data of every e-mail about a booking (`booking_confirmed`, `payment_receipt`,
/// `payment_failed`, `hold_expired`, `booking_cancelled`, `booking_refunded`, `reminder`).
#[derive(Debug, Clone, Serialize)]
pub struct BookingEmail {
    /// The customer's name, for the greeting.
    pub customer_name: Option<String>,
    /// What was booked.
    pub listing: Option<ListingFacts>,
    /// The booking.
    pub booking: Option<BookingFacts>,
}

/// The listing, as an e-mail tells it.
#[derive(Debug, Clone, Serialize)]
pub struct ListingFacts {
    /// Its title, as the provider wrote it (HTML-escaped by the `.html` templates).
    pub title: String,
    /// When it starts.
    pub starts_at: DateTime<FixedOffset>,
}

/// The booking, as an e-mail tells it.
#[derive(Debug, Clone, Serialize)]
pub struct BookingFacts {
    /// Its id: the reference a customer quotes.
    pub id: Uuid,
    /// Seats booked.
    pub seats: i32,
    /// The price of the booking, in minor units.
    pub amount_cents: i64,
    /// ISO 4217 code, e.g. `eur`.
    pub currency: String,
    /// Until when its seats are held for payment, while it waits for one.
    pub held_until: Option<DateTime<FixedOffset>>,
}

impl BookingEmail {
    /// The data of an e-mail to `customer_name` about `booking` of `listing`, as they are now.
    pub fn new(
        customer_name: Option<&str>,
        booking: Option<&bookings::Model>,
        listing: Option<&listings::Model>,
    ) -> Self {
        Self {
            customer_name: customer_name
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            listing: listing.map(|l| ListingFacts {
                title: l.title.clone(),
                starts_at: l.starts_at,
            }),
            booking: booking.map(|b| BookingFacts {
                id: b.id,
                seats: b.quantity,
                amount_cents: b.amount_cents,
                currency: b.currency.clone(),
                held_until: (b.status == BookingStatus::PendingPayment)
                    .then_some(b.hold_expires_at),
            }),
        }
    }
}

/// The nightly report e-mailed to the admins: one day, counted in one time zone.
#[derive(Debug, Clone, Serialize)]
pub struct DailyReport {
    /// The day.
    pub date: NaiveDate,
    /// IANA name of the time zone the day is counted in (`REPORT_TZ`).
    pub timezone: String,
    /// Bookings made that day.
    pub bookings: u64,
    /// Seats in those bookings.
    pub seats: u64,
    /// Money taken, one entry per currency (amounts in different currencies never add up).
    pub revenue: Vec<Revenue>,
    /// The listings that took most that day, best first (a handful, not all).
    pub top_listings: Vec<ListingSales>,
}

/// A day's money in one currency.
#[derive(Debug, Clone, Serialize)]
pub struct Revenue {
    /// ISO 4217 code.
    pub currency: String,
    /// Captured, in minor units.
    pub gross_cents: i64,
    /// Refunded, in minor units (net is gross less this).
    pub refunded_cents: i64,
}

/// One listing's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ListingSales {
    /// Its title.
    pub title: String,
    /// Bookings of it made that day.
    pub bookings: u64,
    /// Seats in them.
    pub seats: u64,
    /// Captured, in minor units of `currency`.
    pub gross_cents: i64,
    /// The listing's currency.
    pub currency: String,
}
