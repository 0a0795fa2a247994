//! `GET /api/v1/bookings/{id}`.

use actix_web::{HttpResponse, get, web};
use uuid::Uuid;

use super::access::{access_of, not_found};
use super::views::BookingView;
use crate::extract::AuthUser;
use crate::openapi::problems::NotFoundProblem;
use crate::problem::ApiResult;
use crate::state::AppState;

/// One booking (its customer, the listing's provider, admins).
#[utoipa::path(get, path = "/api/v1/bookings/{id}", operation_id = "getBooking", tag = "bookings",
    params(("id" = Uuid, Path, description = "booking id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the booking", body = BookingView),
        (status = 404, description = "unknown (also for a malformed id), or not the caller's to see", body = NotFoundProblem, content_type = "application/problem+json"),
    ))]
#[get("/bookings/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let fetched = BookingView::fetch(&state.db, id.into_inner())
        .await?
        .ok_or_else(not_found)?;
    access_of(&caller, fetched.view.customer_id, fetched.provider_id).ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(fetched.for_viewer(caller.id)))
}
