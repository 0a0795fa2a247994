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
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// Deletes up to `limit` keys past their expiry (a bounded batch, so that it never locks
/// out the requests writing keys); returns how many went.
pub async fn prune_expired(db: &impl ConnectionTrait, limit: u64) -> Result<u64, DbErr> {
    let done = db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "DELETE FROM idempotency_keys WHERE ctid IN
               (SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT $1)",
            vec![(limit as i64).into()],
        ))
        .await?;
    Ok(done.rows_affected())
}
