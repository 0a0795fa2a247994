//! `payments`: the one payment of each booking, mirroring the provider's payment
//! (a Stripe PaymentIntent with manual capture, or the simulated provider).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Who processes the payment; stored as text in `payments.provider`.
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
pub enum PaymentProvider {
    #[sea_orm(string_value = "stripe")]
    Stripe,
    /// Used when no Stripe keys are configured.
    #[sea_orm(string_value = "simulated")]
    Simulated,
}

impl PaymentProvider {
    /// The value stored in the database and used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Simulated => "simulated",
        }
    }
}

/// Where a payment is in its life; stored as text in `payments.status`.
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
pub enum PaymentStatus {
    /// The provider could not be reached yet; a job creates the payment.
    #[sea_orm(string_value = "creating")]
    Creating,
    /// Created; waiting for the customer to pay.
    #[sea_orm(string_value = "requires_payment")]
    RequiresPayment,
    #[sea_orm(string_value = "authorized")]
    Authorized,
    #[sea_orm(string_value = "captured")]
    Captured,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    #[sea_orm(string_value = "refunded")]
    Refunded,
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl PaymentStatus {
    /// The value stored in the database and used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::RequiresPayment => "requires_payment",
            Self::Authorized => "authorized",
            Self::Captured => "captured",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
            Self::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub booking_id: Uuid,
    pub provider: PaymentProvider,
    /// The provider's id (a PaymentIntent id for Stripe), once created.
    #[sea_orm(column_type = "Text", nullable, unique)]
    pub provider_payment_id: Option<String>,
    pub status: PaymentStatus,
    pub amount_cents: i64,
    #[sea_orm(column_type = "Text")]
    pub currency: String,
    /// Shown to the booking's customer only.
    #[sea_orm(column_type = "Text", nullable)]
    pub client_secret: Option<String>,
    pub amount_captured_cents: i64,
    pub amount_refunded_cents: i64,
    pub captured_at: Option<DateTimeWithTimeZone>,
    pub cancelled_at: Option<DateTimeWithTimeZone>,
    pub refunded_at: Option<DateTimeWithTimeZone>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Calls of the current step whose outcome is unknown (a 5xx, a lost answer): the next
    /// call reads the provider's state first and uses a new idempotency key only when that
    /// state proves the earlier call did nothing.
    pub provider_attempts: i32,
    /// When the customer disputed the charge with their bank (`charge.dispute.created`).
    pub disputed_at: Option<DateTimeWithTimeZone>,
    /// The dispute's reason as the provider gives it (`fraudulent`, ...).
    #[sea_orm(column_type = "Text", nullable)]
    pub dispute_reason: Option<String>,
    /// When the reconciliation last compared it with the provider.
    pub reconciled_at: Option<DateTimeWithTimeZone>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
