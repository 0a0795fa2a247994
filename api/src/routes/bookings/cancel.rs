//! `POST /api/v1/bookings/{id}/cancel`.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, post, web};
use orderly_db::users::Role;
use orderly_domain::bookings::{self, CancelledBy};
use uuid::Uuid;

use super::access::{Access, access_of, not_found};
use super::views::BookingView;
use crate::extract::AuthUser;
use crate::middleware::RequestId;
use crate::openapi::problems::{CancelConflictProblem, ForbiddenProblem, NotFoundProblem};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// Cancels a booking (its customer or an admin): seats return, an authorised payment is
/// cancelled, a captured one refunded, and the customer is told. A customer cannot cancel a
/// booking whose payment went through (`confirmed` or `paid`) within
/// `CANCELLATION_CUTOFF_HOURS` of the listing's start; an unpaid one always, an admin
/// always.
#[utoipa::path(post, path = "/api/v1/bookings/{id}/cancel", operation_id = "cancelBooking", tag = "bookings",
    params(("id" = Uuid, Path, description = "booking id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the booking, cancelled", body = BookingView),
        (status = 403, description = "the listing's provider may see but not cancel", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 404, description = "unknown (also for a malformed id), or not the caller's to see", body = NotFoundProblem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: already expired, cancelled or refunded; `cancellation_closed`: the customer's booking is confirmed or paid and its listing starts within `CANCELLATION_CUTOFF_HOURS` (an admin may still cancel it)", body = CancelConflictProblem, content_type = "application/problem+json"),
    ))]
#[post("/bookings/{id}/cancel")]
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let before = BookingView::fetch(&state.db, id)
        .await?
        .ok_or_else(not_found)?;
    let access =
        access_of(&caller, before.view.customer_id, before.provider_id).ok_or_else(not_found)?;
    if access != Access::Manage {
        return Err(ApiError::Forbidden(
            "only the customer or an admin may cancel a booking".into(),
        ));
    }
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let by = if caller.role == Role::Admin {
        CancelledBy::Admin
    } else {
        CancelledBy::Customer {
            cutoff: state.settings.cancellation_cutoff,
        }
    };
    let cancelled = bookings::cancel(&state.db, id, by, request_id.as_deref()).await?;
    tracing::info!(booking.id = %cancelled.id, user.id = %caller.id, "booking cancelled by request");
    let after = BookingView::fetch(&state.db, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(after.for_viewer(caller.id)))
}
