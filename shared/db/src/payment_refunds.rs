//! `payment_refunds`: every refund of a payment, ours or one made at the provider (in full
//! or in part), on the day it happened; the daily report sums them.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Who made a refund; stored as text in `payment_refunds.source`.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum RefundSource {
    /// A `refund_payment` job.
    #[sea_orm(string_value = "orderly")]
    Orderly,
    /// Made at the provider (its dashboard), seen in an event or a reconciliation.
    #[sea_orm(string_value = "provider")]
    Provider,
}

impl RefundSource {
    /// The value stored in the database and used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Orderly => "orderly",
            Self::Provider => "provider",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "payment_refunds")]
pub struct Model {
    /// The provider's refund id, or the event or reconciliation that saw the refund: the
    /// same refund is recorded once.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    pub payment_id: Uuid,
    pub amount_cents: i64,
    #[sea_orm(column_type = "Text")]
    pub currency: String,
    pub source: RefundSource,
    pub refunded_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
