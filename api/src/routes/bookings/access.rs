//! Who may see and change a booking.

use orderly_db::users::Role;
use uuid::Uuid;

use crate::extract::AuthUser;
use crate::problem::ApiError;

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
    if caller.is_admin() || customer_id == caller.id {
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
