//! Sample data for every e-mail: rendered at start-up to check the templates, and a
//! starting point for previews and tests.

use chrono::{DateTime, FixedOffset, NaiveDate};
use uuid::Uuid;

use super::data::{BookingEmail, BookingFacts, DailyReport, ListingFacts, ListingSales, Revenue};

/// A fixed instant, `secs` after the epoch.
fn at(secs: i64) -> DateTime<FixedOffset> {
    DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .fixed_offset()
}

/// A booking with every field set, waiting for its payment.
pub fn booking() -> BookingEmail {
    BookingEmail {
        customer_name: Some("Ada Lovelace".into()),
        listing: Some(ListingFacts {
            title: "Sunset kayak tour".into(),
            // Sat 14 Mar 2026, 18:30 UTC.
            starts_at: at(1_773_513_000),
        }),
        booking: Some(BookingFacts {
            id: Uuid::from_u128(0x0192_7c3e_5a4b_7d2e_9f10_2b3c_4d5e_6f70),
            seats: 2,
            amount_cents: 8400,
            currency: "eur".into(),
            // Sat 7 Mar 2026, 18:45 UTC.
            held_until: Some(at(1_772_909_100)),
        }),
    }
}

/// A message with nothing but its recipient (no name, booking or listing).
pub fn without_booking() -> BookingEmail {
    BookingEmail {
        customer_name: None,
        listing: None,
        booking: None,
    }
}

/// A busy day in two currencies.
pub fn report() -> DailyReport {
    DailyReport {
        date: NaiveDate::from_ymd_opt(2026, 3, 14).unwrap_or_default(),
        timezone: "Europe/Berlin".into(),
        bookings: 42,
        seats: 97,
        revenue: vec![
            Revenue {
                currency: "eur".into(),
                gross_cents: 398_400,
                refunded_cents: 8_400,
            },
            Revenue {
                currency: "usd".into(),
                gross_cents: 12_000,
                refunded_cents: 0,
            },
        ],
        top_listings: vec![
            ListingSales {
                title: "Sunset kayak tour".into(),
                bookings: 30,
                seats: 71,
                gross_cents: 298_200,
                currency: "eur".into(),
            },
            ListingSales {
                title: "Old town walk".into(),
                bookings: 10,
                seats: 22,
                gross_cents: 100_200,
                currency: "eur".into(),
            },
            ListingSales {
                title: "Harbour cruise".into(),
                bookings: 2,
                seats: 4,
                gross_cents: 12_000,
                currency: "usd".into(),
            },
        ],
    }
}

/// A day without a booking.
pub fn quiet_report() -> DailyReport {
    DailyReport {
        bookings: 0,
        seats: 0,
        revenue: Vec::new(),
        top_listings: Vec::new(),
        ..report()
    }
}
