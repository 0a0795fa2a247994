//! `payment_repairs`: what the reconciliation found disagreeing with the payment provider,
//! and what it did about it (the dashboard's money page lists them).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "payment_repairs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub booking_id: Uuid,
    /// What disagreed, in a word (`captured_but_cancelled`, ...).
    #[sea_orm(column_type = "Text")]
    pub mismatch: String,
    /// What was done, in a sentence.
    #[sea_orm(column_type = "Text")]
    pub action: String,
    pub created_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
