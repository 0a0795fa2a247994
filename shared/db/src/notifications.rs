//! `notifications`: every e-mail and SMS the system sends, one row per booking, kind and
//! channel (or per report run and admin) (`dedup_key`), so that a retried job finds the row
//! instead of sending again.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// How a notification is delivered; stored as text in `notifications.channel`.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum NotificationChannel {
    #[sea_orm(string_value = "email")]
    Email,
    #[sea_orm(string_value = "sms")]
    Sms,
}

impl NotificationChannel {
    /// The value stored in the database and used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }
}

/// What a notification tells; stored as text in `notifications.kind`.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    #[sea_orm(string_value = "booking_confirmed")]
    BookingConfirmed,
    #[sea_orm(string_value = "payment_receipt")]
    PaymentReceipt,
    /// A payment attempt failed (a declined card); the booking waits until its hold ends.
    #[sea_orm(string_value = "payment_failed")]
    PaymentFailed,
    #[sea_orm(string_value = "hold_expired")]
    HoldExpired,
    #[sea_orm(string_value = "booking_cancelled")]
    BookingCancelled,
    #[sea_orm(string_value = "booking_refunded")]
    BookingRefunded,
    #[sea_orm(string_value = "reminder")]
    Reminder,
    #[sea_orm(string_value = "daily_report")]
    DailyReport,
}

impl NotificationKind {
    /// The value stored in the database and used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BookingConfirmed => "booking_confirmed",
            Self::PaymentReceipt => "payment_receipt",
            Self::PaymentFailed => "payment_failed",
            Self::HoldExpired => "hold_expired",
            Self::BookingCancelled => "booking_cancelled",
            Self::BookingRefunded => "booking_refunded",
            Self::Reminder => "reminder",
            Self::DailyReport => "daily_report",
        }
    }
}

/// Delivery state; stored as text in `notifications.status`.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Handed to the provider; the outcome is not recorded yet.
    #[sea_orm(string_value = "sending")]
    Sending,
    #[sea_orm(string_value = "sent")]
    Sent,
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl NotificationStatus {
    /// The value stored in the database and used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// E.g. `booking:<id>:email:booking_confirmed`.
    #[sea_orm(column_type = "Text", unique)]
    pub dedup_key: String,
    pub booking_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub channel: NotificationChannel,
    pub kind: NotificationKind,
    /// E-mail address or E.164 phone number.
    #[sea_orm(column_type = "Text")]
    pub recipient: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub subject: Option<String>,
    pub status: NotificationStatus,
    pub attempts: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub provider_message_id: Option<String>,
    pub sent_at: Option<DateTimeWithTimeZone>,
    /// While `sending`: when another worker may send it again (its sender died).
    pub sending_until: Option<DateTimeWithTimeZone>,
    /// For a `daily_report` e-mail (and only for one): the stored report it is rendered from.
    pub report_date: Option<Date>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
