//! Domain rules shared by the API and the workers.

pub mod bookings;
pub mod checkout;
pub mod delivery;
pub mod messages;
pub mod notifications;
pub mod payment_events;
pub mod payments;
pub mod reconcile;
pub mod reminders;
pub mod reports;
pub mod retention;
pub mod seats;
pub mod sweep;
pub mod templates;
