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

/// The caller's access to a booking of `customer_id` on a listing of `provider_id`; `None`
/// means the booking must look absent (`404`), so that ids cannot be probed.
pub fn access_of(caller: &AuthUser, customer_id: Uuid, provider_id: Uuid) -> Option<Access> {
    if caller.role == Role::Admin || customer_id == caller.id {
        Some(Access::Manage)
    } else if caller.role == Role::Provider && provider_id == caller.id {
        Some(Access::View)
    } else {
        None
    }
}

/// `404` for a booking the caller may not see.
pub fn not_found() -> ApiError {
    ApiError::NotFound("no such booking".into())
}

/// Loads a booking the caller may see.
pub async fn visible(
    db: &impl ConnectionTrait,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<(bookings::Model, Access)> {
    let booking = bookings::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(not_found)?;
    let provider_id = listings::Entity::find_by_id(booking.listing_id)
        .one(db)
        .await?
        .map(|l| l.provider_id)
        .unwrap_or_default();
    let access = access_of(caller, booking.customer_id, provider_id).ok_or_else(not_found)?;
    Ok((booking, access))
}
