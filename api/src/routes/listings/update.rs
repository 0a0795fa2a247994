//! `PATCH /api/v1/listings/{id}`.

use actix_web::{HttpResponse, patch, web};
use chrono::{DateTime, Utc};
use orderly_db::listings;
use orderly_domain::seats;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, QuerySelect, Set, TransactionTrait};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use super::views::ListingView;
use crate::extract::{AuthUser, StrictJson};
use crate::openapi::problems::{ConflictProblem, ForbiddenProblem, NotFoundProblem};
use crate::problem::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// The fields to change; absent fields stay as they are, and `description: null` clears
/// the description.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateListing {
    /// Title, 1 to 200 characters (blanks aside).
    #[validate(custom(function = "crate::validation::valid_title"))]
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// Description, up to 10,000 characters; `null` clears it (to empty).
    #[serde(default, deserialize_with = "present")]
    #[validate(length(max = 10000, message = "must be at most 10000 characters"))]
    #[schema(value_type = Option<String>, max_length = 10000)]
    pub description: Option<Option<String>>,
    /// When it starts; must be in the future.
    pub starts_at: Option<DateTime<Utc>>,
    /// Seats in all, 1 to 100,000; not below the seats already booked (`409`).
    #[validate(range(min = 1, max = 100000, message = "must be between 1 and 100000"))]
    #[schema(minimum = 1, maximum = 100000)]
    pub capacity: Option<i32>,
    /// Price per seat in the currency's minor unit (cents for `eur`; `jpy` has none, so
    /// 1 yen is 1); applies to new bookings.
    #[validate(range(min = 0, max = 100000000, message = "must be between 0 and 100000000"))]
    #[schema(minimum = 0, maximum = 100000000)]
    pub price_cents: Option<i64>,
}

/// A member that is present, `null` included: absent is `None` (by `serde(default)`),
/// `null` is `Some(None)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Changes a listing (its provider, or an admin).
#[utoipa::path(patch, path = "/api/v1/listings/{id}", operation_id = "updateListing", tag = "listings", request_body = UpdateListing,
    params(("id" = Uuid, Path, description = "listing id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the listing, changed", body = ListingView),
        (status = 403, description = "another provider's listing", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 404, description = "no such listing (also for a malformed id)", body = NotFoundProblem, content_type = "application/problem+json"),
        (status = 409, description = "capacity below the seats already booked", body = ConflictProblem, content_type = "application/problem+json"),
    ))]
#[patch("/listings/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    body: StrictJson<UpdateListing>,
) -> ApiResult<HttpResponse> {
    let StrictJson(change) = body;
    let now = Utc::now();
    if change.starts_at.is_some_and(|t| t <= now) {
        return Err(ApiError::invalid("starts_at", "must be in the future"));
    }
    let txn = state.db.begin().await?;
    let listing = listings::Entity::find_by_id(id.into_inner())
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such listing".into()))?;
    if listing.provider_id != caller.id && !caller.is_admin() {
        return Err(ApiError::Forbidden(
            "only the listing's provider or an admin may change it".into(),
        ));
    }
    let seats_left = match change.capacity {
        Some(capacity) => {
            seats::resize(listing.capacity, listing.seats_left, capacity).map_err(|e| {
                ApiError::conflict(
                    ErrorCode::Conflict,
                    format!("capacity cannot drop below booked seats: {e}"),
                )
            })?
        }
        None => listing.seats_left,
    };
    let mut active = listing.clone().into_active_model();
    if let Some(title) = change.title {
        active.title = Set(title.trim().to_owned());
    }
    if let Some(description) = change.description {
        active.description = Set(description.unwrap_or_default());
    }
    if let Some(starts_at) = change.starts_at {
        active.starts_at = Set(starts_at.into());
    }
    if let Some(capacity) = change.capacity {
        active.capacity = Set(capacity);
        active.seats_left = Set(seats_left);
    }
    if let Some(price) = change.price_cents {
        active.price_cents = Set(price);
    }
    active.updated_at = Set(now.into());
    let updated = active.update(&txn).await?;
    txn.commit().await?;
    tracing::info!(listing.id = %updated.id, user.id = %caller.id, "listing updated");
    Ok(HttpResponse::Ok().json(ListingView::from(updated)))
}
