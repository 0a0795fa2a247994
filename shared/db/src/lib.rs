//! SeaORM entities, one module per table of the schema in `migrations/`, with the text
//! enums that the tables' CHECK constraints allow.

pub mod audit_log;
pub mod bookings;
pub mod daily_reports;
pub mod idempotency_keys;
pub mod listings;
pub mod notifications;
pub mod outbox;
pub mod payment_refunds;
pub mod payment_repairs;
pub mod payments;
pub mod processed_webhook_events;
pub mod refresh_tokens;
pub mod schedule_runs;
pub mod sql;
pub mod users;

/// The entity types under short names, for `use crate::prelude::*`.
pub mod prelude {
    pub use super::audit_log::Entity as AuditLog;
    pub use super::bookings::Entity as Bookings;
    pub use super::daily_reports::Entity as DailyReports;
    pub use super::idempotency_keys::Entity as IdempotencyKeys;
    pub use super::listings::Entity as Listings;
    pub use super::notifications::Entity as Notifications;
    pub use super::outbox::Entity as Outbox;
    pub use super::payment_refunds::Entity as PaymentRefunds;
    pub use super::payment_repairs::Entity as PaymentRepairs;
    pub use super::payments::Entity as Payments;
    pub use super::processed_webhook_events::Entity as ProcessedWebhookEvents;
    pub use super::refresh_tokens::Entity as RefreshTokens;
    pub use super::schedule_runs::Entity as ScheduleRuns;
    pub use super::users::Entity as Users;
}
