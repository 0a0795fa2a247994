//! `bookings`: the orders that frontends post. A booking holds seats of one listing
//! from `pending_payment` until it expires, is cancelled or is refunded.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a booking is in its life; stored as text in `bookings.status`.
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
pub enum BookingStatus {
    /// Seats held until `hold_expires_at` while the customer pays.
    #[sea_orm(string_value = "pending_payment")]
    PendingPayment,
    /// Payment authorised; the seats stay held.
    #[sea_orm(string_value = "confirmed")]
    Confirmed,
    /// Payment captured.
    #[sea_orm(string_value = "paid")]
    Paid,
    #[sea_orm(string_value = "expired")]
    Expired,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    #[sea_orm(string_value = "refunded")]
    Refunded,
}

impl BookingStatus {
    /// The value stored in the database and used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Confirmed => "confirmed",
            Self::Paid => "paid",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "bookings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub listing_id: Uuid,
    pub customer_id: Uuid,
    pub quantity: i32,
    pub amount_cents: i64,
    #[sea_orm(column_type = "Text")]
    pub currency: String,
    pub status: BookingStatus,
    pub hold_expires_at: DateTimeWithTimeZone,
    /// The `Idempotency-Key` the booking was created with; unique per customer.
    #[sea_orm(column_type = "Text", nullable)]
    pub idempotency_key: Option<String>,
    /// `X-Request-Id` of the request that created the booking.
    #[sea_orm(column_type = "Text", nullable)]
    pub request_id: Option<String>,
    pub confirmed_at: Option<DateTimeWithTimeZone>,
    pub paid_at: Option<DateTimeWithTimeZone>,
    pub expired_at: Option<DateTimeWithTimeZone>,
    pub cancelled_at: Option<DateTimeWithTimeZone>,
    pub refunded_at: Option<DateTimeWithTimeZone>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The booking's payment, whose `booking_id` names the booking. Declared with its columns
    /// here, where the joins use it, so that the payments entity names no relation back.
    #[sea_orm(
        belongs_to = "super::payments::Entity",
        from = "Column::Id",
        to = "super::payments::Column::BookingId"
    )]
    Payment,
}

impl ActiveModelBehavior for ActiveModel {}
