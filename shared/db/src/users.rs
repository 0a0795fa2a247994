//! `users`: accounts of customers, providers and admins. E-mails are stored lower-cased.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What a user may do; stored as text in `users.role`.
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
pub enum Role {
    #[sea_orm(string_value = "customer")]
    Customer,
    #[sea_orm(string_value = "provider")]
    Provider,
    #[sea_orm(string_value = "admin")]
    Admin,
}

impl Role {
    /// The value stored in the database and used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Provider => "provider",
            Self::Admin => "admin",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub email: String,
    /// Argon2 PHC string; never serialise a `Model` into a response.
    #[sea_orm(column_type = "Text")]
    pub password_hash: String,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// E.164, e.g. `+4915112345678`.
    #[sea_orm(column_type = "Text", nullable)]
    pub phone: Option<String>,
    pub role: Role,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
