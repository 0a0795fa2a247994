//! `GET /api/v1/bookings/{id}`.

use actix_web::{HttpResponse, get, web};
use uuid::Uuid;

use super::access::visible;
use super::views::BookingView;
use crate::extract::AuthUser;
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

/// One booking (its customer, the listing's provider, admins).
#[utoipa::path(get, path = "/api/v1/bookings/{id}", tag = "bookings",
    params(("id" = Uuid, Path, description = "booking id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BookingView),
        (status = 404, description = "unknown, or not the caller's to see", body = Problem, content_type = "application/problem+json"),
    ))]
#[get("/bookings/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let (booking, _) = visible(&state.db, &caller, id.into_inner()).await?;
    let view = BookingView::load(&state.db, booking, caller.id).await?;
    Ok(HttpResponse::Ok().json(view))
}
