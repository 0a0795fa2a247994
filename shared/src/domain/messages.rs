//! The words of each message, rendered from the booking as it is when the message is sent.

use crate::entities::notifications::NotificationKind;
use crate::entities::{bookings, listings};

/// Subject and body of an e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailText {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

fn money(cents: i64, currency: &str) -> String {
    format!(
        "{}.{:02} {}",
        cents / 100,
        (cents % 100).abs(),
        currency.to_uppercase()
    )
}

/// One short line per fact, so that the body stays plain 7-bit text.
fn describe(booking: Option<&bookings::Model>, listing: Option<&listings::Model>) -> String {
    let mut lines = Vec::new();
    if let Some(l) = listing {
        lines.push(format!("  Listing: {}", l.title));
        lines.push(format!(
            "  Starts:  {}",
            l.starts_at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    if let Some(b) = booking {
        lines.push(format!("  Seats:   {}", b.quantity));
        lines.push(format!("  Amount:  {}", money(b.amount_cents, &b.currency)));
        lines.push(format!("  Booking: {}", b.id));
    }
    if lines.is_empty() {
        lines.push("  your booking".to_owned());
    }
    lines.join("\n")
}

/// The e-mail for `kind`.
pub fn email(
    kind: NotificationKind,
    booking: Option<&bookings::Model>,
    listing: Option<&listings::Model>,
) -> EmailText {
    let what = describe(booking, listing);
    let (subject, lead) = match kind {
        NotificationKind::BookingConfirmed => {
            ("Your booking is confirmed", "Your booking is confirmed:")
        }
        NotificationKind::PaymentReceipt => ("Your receipt", "We received your payment for:"),
        NotificationKind::HoldExpired => (
            "Your booking hold has expired",
            "We did not receive your payment in time, so these seats were released:",
        ),
        NotificationKind::BookingCancelled => {
            ("Your booking was cancelled", "Your booking was cancelled:")
        }
        NotificationKind::BookingRefunded => {
            ("Your refund is on its way", "We refunded your payment for:")
        }
        NotificationKind::Reminder => ("Coming up soon", "A reminder of your booking:"),
        NotificationKind::DailyReport => ("Daily report", "The daily report is attached."),
    };
    EmailText {
        subject: subject.to_owned(),
        body: format!("Hello,\n\n{lead}\n\n{what}\n\nThank you,\nOrderly\n"),
    }
}

/// The SMS for `kind`.
pub fn sms(
    kind: NotificationKind,
    booking: Option<&bookings::Model>,
    listing: Option<&listings::Model>,
) -> String {
    let title = listing.map(|l| l.title.as_str()).unwrap_or("your booking");
    let seats = booking.map(|b| b.quantity).unwrap_or(0);
    match kind {
        NotificationKind::BookingConfirmed => {
            format!("Orderly: {seats} seat(s) for {title} confirmed.")
        }
        NotificationKind::Reminder => format!("Orderly: reminder, {title} starts soon."),
        other => format!("Orderly: {} for {title}.", other.as_str().replace('_', " ")),
    }
}
