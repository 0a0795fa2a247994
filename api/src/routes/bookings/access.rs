//! Who may see and change a booking.

use orderly_shared::entities::users::Role;
use orderly_shared::entities::{bookings, listings};
use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use crate::extract::AuthUser;
use crate::problem::{ApiError, ApiResult};

/// How the caller relates to a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The customer who booked, or an admin: may see and cancel.
    Manage,
    /// The listing's provider: may see.
    View,
}

/// Loads a booking the caller may see; anything else is `404` so that ids cannot be probed.
pub async fn visible(
    db: &impl ConnectionTrait,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<(bookings::Model, Access)> {
    let not_found = || ApiError::NotFound("no such booking".into());
    let booking = bookings::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(not_found)?;
    if caller.role == Role::Admin || booking.customer_id == caller.id {
        return Ok((booking, Access::Manage));
    }
    if caller.role == Role::Provider {
        let listing = listings::Entity::find_by_id(booking.listing_id)
            .one(db)
            .await?;
        if listing.is_some_and(|l| l.provider_id == caller.id) {
            return Ok((booking, Access::View));
        }
    }
    Err(not_found())
}
