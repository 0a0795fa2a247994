//! `processed_webhook_events`: the webhook inbox. A verified provider event is stored whole
//! on receipt and applied by an `apply_payment_event` job; an event id seen before is
//! acknowledged and ignored.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "processed_webhook_events")]
pub struct Model {
    /// The provider's event id (`evt_...` for Stripe).
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub event_id: String,
    #[sea_orm(column_type = "Text")]
    pub event_type: String,
    pub received_at: DateTimeWithTimeZone,
    /// The body exactly as received (its signature was checked on receipt); `NULL` for
    /// events applied before the inbox existed.
    #[sea_orm(column_type = "Text", nullable)]
    pub payload: Option<String>,
    /// When its job applied it; `NULL` while it waits (or its job is dead).
    pub applied_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
