//! The words of each message, rendered from the booking as it is when the message is sent:
//! e-mail from the templates of `TEMPLATES_DIR` (a plain-text and an HTML part from the
//! same data), SMS as one short plain line.

mod data;
pub mod samples;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use data::{BookingEmail, BookingFacts, DailyReport, ListingFacts, ListingSales, Revenue};

use crate::templates::{TemplateError, Templates, filters};
use orderly_db::notifications::NotificationKind;
use orderly_db::{bookings, listings};

/// The e-mails to a customer about one booking; each has its templates
/// `email/<name>.html` and `email/<name>.txt`, rendered from a [`BookingEmail`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BookingEmailKind {
    /// The payment is authorised and the seats are the customer's.
    Confirmed,
    /// The payment was captured.
    PaymentReceipt,
    /// The payment was refused.
    PaymentFailed,
    /// Nobody paid in time; the seats were released.
    HoldExpired,
    /// The booking was cancelled.
    Cancelled,
    /// The payment was refunded.
    Refunded,
    /// The listing starts soon.
    Reminder,
}

impl BookingEmailKind {
    /// Every kind, for the start-up check.
    pub const ALL: [Self; 7] = [
        Self::Confirmed,
        Self::PaymentReceipt,
        Self::PaymentFailed,
        Self::HoldExpired,
        Self::Cancelled,
        Self::Refunded,
        Self::Reminder,
    ];

    /// The templates' name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Confirmed => "booking_confirmed",
            Self::PaymentReceipt => "payment_receipt",
            Self::PaymentFailed => "payment_failed",
            Self::HoldExpired => "hold_expired",
            Self::Cancelled => "booking_cancelled",
            Self::Refunded => "booking_refunded",
            Self::Reminder => "reminder",
        }
    }

    /// The subject line, before the listing's title.
    fn subject(self) -> &'static str {
        match self {
            Self::Confirmed => "Your booking is confirmed",
            Self::PaymentReceipt => "Your receipt",
            Self::PaymentFailed => "Your payment did not go through",
            Self::HoldExpired => "Your booking hold has expired",
            Self::Cancelled => "Your booking was cancelled",
            Self::Refunded => "Your refund is on its way",
            Self::Reminder => "Coming up soon",
        }
    }
}

/// The notification kinds that are e-mails about a booking (all but the daily report,
/// which is rendered from its report by [`daily_report`]).
impl TryFrom<NotificationKind> for BookingEmailKind {
    type Error = NotificationKind;

    fn try_from(kind: NotificationKind) -> Result<Self, Self::Error> {
        Ok(match kind {
            NotificationKind::BookingConfirmed => Self::Confirmed,
            NotificationKind::PaymentReceipt => Self::PaymentReceipt,
            NotificationKind::PaymentFailed => Self::PaymentFailed,
            NotificationKind::HoldExpired => Self::HoldExpired,
            NotificationKind::BookingCancelled => Self::Cancelled,
            NotificationKind::BookingRefunded => Self::Refunded,
            NotificationKind::Reminder => Self::Reminder,
            NotificationKind::DailyReport => return Err(kind),
        })
    }
}

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailText {
    /// Subject line.
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
}

/// What a template is given: the message's data, and its subject (the HTML `<title>`).
#[derive(Serialize)]
struct Context<'a, T> {
    subject: &'a str,
    #[serde(flatten)]
    data: &'a T,
}

/// Renders both parts of `email/<name>`.
fn render(
    templates: &Templates,
    name: &str,
    subject: String,
    data: &impl Serialize,
) -> Result<EmailText, TemplateError> {
    let context = Context {
        subject: &subject,
        data,
    };
    Ok(EmailText {
        text: templates.render(&format!("email/{name}.txt"), &context)?,
        html: templates.render(&format!("email/{name}.html"), &context)?,
        subject,
    })
}

/// The e-mail of `kind` about a booking.
pub fn booking_email(
    templates: &Templates,
    kind: BookingEmailKind,
    data: &BookingEmail,
) -> Result<EmailText, TemplateError> {
    let subject = match &data.listing {
        Some(listing) => format!("{}: {}", kind.subject(), one_line(&listing.title)),
        None => kind.subject().to_owned(),
    };
    render(templates, kind.name(), subject, data)
}

/// The nightly report e-mail to the admins.
pub fn daily_report(
    templates: &Templates,
    report: &DailyReport,
) -> Result<EmailText, TemplateError> {
    let subject = format!("Daily report for {}", filters::long_date(report.date));
    render(templates, "daily_report", subject, report)
}

/// `text` on one line: a title's line breaks and other control characters become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Renders every e-mail from sample data (with every optional part and without), so that a
/// template that is missing or does not render is found at start-up.
pub fn check(templates: &Templates) -> Result<(), TemplateError> {
    for kind in BookingEmailKind::ALL {
        for data in [samples::booking(), samples::without_booking()] {
            booking_email(templates, kind, &data)?;
        }
    }
    for report in [samples::report(), samples::quiet_report()] {
        daily_report(templates, &report)?;
    }
    Ok(())
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
