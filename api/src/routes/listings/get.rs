//! `GET /api/v1/listings/{id}`.

use actix_web::{HttpResponse, get, web};
use orderly_db::listings;
use sea_orm::EntityTrait;
use uuid::Uuid;

use super::views::ListingView;
use crate::openapi::problems::NotFoundProblem;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// One listing (anyone).
#[utoipa::path(get, path = "/api/v1/listings/{id}", operation_id = "getListing", tag = "listings",
    params(("id" = Uuid, Path, description = "listing id")),
    responses(
        (status = 200, description = "the listing", body = ListingView),
        (status = 404, description = "no such listing (also for a malformed id)", body = NotFoundProblem, content_type = "application/problem+json"),
    ))]
#[get("/listings/{id}")]
pub async fn get(state: web::Data<AppState>, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let listing = listings::Entity::find_by_id(id.into_inner())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such listing".into()))?;
    Ok(HttpResponse::Ok().json(ListingView::from(listing)))
}
