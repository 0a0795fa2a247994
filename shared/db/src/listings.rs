//! `listings`: what gets booked, with the seats that bookings draw from. The database
//! refuses `seats_left` below zero or above `capacity` (`listings_seats_left_check`).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Whether a listing can still be booked; stored as text in `listings.status`.
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
pub enum ListingStatus {
    #[sea_orm(string_value = "published")]
    Published,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

impl ListingStatus {
    /// The value stored in the database and used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "listings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub provider_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub starts_at: DateTimeWithTimeZone,
    pub capacity: i32,
    pub seats_left: i32,
    pub price_cents: i64,
    /// ISO 4217, lower case (`eur`), as Stripe writes it.
    #[sea_orm(column_type = "Text")]
    pub currency: String,
    pub status: ListingStatus,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::ProviderId",
        to = "super::users::Column::Id",
        on_update = "NoAction",
        on_delete = "Restrict"
    )]
    Provider,
}

/// The provider who offers the listing.
impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Provider.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
