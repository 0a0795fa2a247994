//! `POST /api/v1/listings`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{DateTime, Utc};
use orderly_db::listings::{self, ListingStatus};
use orderly_db::users::Role;
use sea_orm::{ActiveModelTrait, Set};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use super::views::ListingView;
use crate::extract::{AuthUser, StrictJson};
use crate::idempotency;
use crate::openapi::problems::{ConflictProblem, ForbiddenProblem, IdempotentValidationProblem};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::validation::CURRENCY;

/// A new listing.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateListing {
    /// Title, 1 to 200 characters (blanks aside).
    #[validate(custom(function = "crate::validation::valid_title"))]
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// Description, up to 10,000 characters.
    #[validate(length(max = 10000, message = "must be at most 10000 characters"))]
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// When it starts (RFC 3339); must be in the future.
    pub starts_at: DateTime<Utc>,
    /// Seats in all, 1 to 100,000.
    #[validate(range(min = 1, max = 100000, message = "must be between 1 and 100000"))]
    #[schema(minimum = 1, maximum = 100000)]
    pub capacity: i32,
    /// Price per seat in the currency's minor unit (cents for `eur`; `jpy` has none, so
    /// 1 yen is 1).
    #[validate(range(min = 0, max = 100000000, message = "must be between 0 and 100000000"))]
    #[schema(minimum = 0, maximum = 100000000)]
    pub price_cents: i64,
    /// ISO 4217, lower case (`eur`).
    #[validate(regex(path = *CURRENCY, message = "must be a lower-case ISO 4217 code such as eur"))]
    #[schema(pattern = "^[a-z]{3}$")]
    pub currency: String,
}

/// Creates a listing (providers and admins). Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/listings", operation_id = "createListing", tag = "listings", request_body = CreateListing,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
        description = "replays the first answer for the same key and body")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = ListingView, description = "created; replays carry `Idempotent-Replayed: true`",
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`; absent otherwise"))),
        (status = 403, description = "customers cannot create listings", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 409, description = "a request with this `Idempotency-Key` is still being served", body = ConflictProblem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (`starts_at` must be in the future), or `idempotency_key_reused`", body = IdempotentValidationProblem, content_type = "application/problem+json"),
    ))]
#[post("/listings")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
    body: StrictJson<CreateListing>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Provider, Role::Admin])?;
    let StrictJson(new) = body;
    if new.starts_at <= Utc::now() {
        return Err(ApiError::invalid("starts_at", "must be in the future"));
    }
    idempotency::run(&state.db, &req, caller.id, StatusCode::CREATED, |_| async {
        insert(&state, &caller, new).await
    })
    .await
}

async fn insert(state: &AppState, caller: &AuthUser, new: CreateListing) -> ApiResult<ListingView> {
    let now = Utc::now();
    let listing = listings::ActiveModel {
        id: Set(Uuid::now_v7()),
        provider_id: Set(caller.id),
        title: Set(new.title.trim().to_owned()),
        description: Set(new.description.unwrap_or_default()),
        starts_at: Set(new.starts_at.into()),
        capacity: Set(new.capacity),
        seats_left: Set(new.capacity),
        price_cents: Set(new.price_cents),
        currency: Set(new.currency),
        status: Set(ListingStatus::Published),
        created_at: Set(now.into()),
        updated_at: Set(now.into()),
    }
    .insert(&state.db)
    .await?;
    tracing::info!(listing.id = %listing.id, user.id = %caller.id, "listing created");
    Ok(ListingView::from(listing))
}
