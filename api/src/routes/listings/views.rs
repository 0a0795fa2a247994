//! A listing as the API shows it.

use chrono::{DateTime, Utc};
use orderly_db::listings::{self, ListingStatus};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListingView {
    /// Id.
    pub id: Uuid,
    /// The provider who offers it.
    pub provider_id: Uuid,
    /// Title.
    pub title: String,
    /// Description (may be empty).
    pub description: String,
    /// When it starts.
    pub starts_at: DateTime<Utc>,
    /// Seats in all.
    pub capacity: i32,
    /// Seats not held by a booking.
    pub seats_left: i32,
    /// Price per seat in the currency's minor unit (cents for `eur`; `jpy` has none, so
    /// 1 yen is 1).
    pub price_cents: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    /// `published` or `cancelled`.
    pub status: ListingStatus,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<listings::Model> for ListingView {
    fn from(l: listings::Model) -> Self {
        Self {
            id: l.id,
            provider_id: l.provider_id,
            title: l.title,
            description: l.description,
            starts_at: l.starts_at.into(),
            capacity: l.capacity,
            seats_left: l.seats_left,
            price_cents: l.price_cents,
            currency: l.currency,
            status: l.status,
            created_at: l.created_at.into(),
            updated_at: l.updated_at.into(),
        }
    }
}
