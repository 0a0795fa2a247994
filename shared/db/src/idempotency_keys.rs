//! `idempotency_keys`: the first answer to a `POST` sent with an `Idempotency-Key`, so
//! that a retry with the same key and body replays it. The response columns stay empty
//! while the first request is in flight.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub key: String,
    #[sea_orm(column_type = "Text")]
    pub method: String,
    #[sea_orm(column_type = "Text")]
    pub path: String,
    /// Hash of the request body; the same key with another body is refused.
    #[sea_orm(column_type = "Text")]
    pub request_hash: String,
    pub response_status: Option<i16>,
    #[sea_orm(column_type = "VarBinary(StringLen::None)", nullable)]
    pub response_body: Option<Vec<u8>>,
    pub created_at: DateTimeWithTimeZone,
    pub expires_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
