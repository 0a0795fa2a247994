//! `POST /api/v1/bookings`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, post, web};
use orderly_db::bookings as booking_rows;
use orderly_db::users::Role;
use orderly_domain::bookings::{BookingError, NewBooking};
use orderly_domain::checkout;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use super::views::BookingView;
use crate::extract::{AuthUser, StrictJson};
use crate::idempotency;
use crate::middleware::RequestId;
use crate::openapi::problems::{
    BookingConflictProblem, ForbiddenProblem, IdempotentValidationProblem, NotFoundProblem,
    PaymentFailedProblem, RateLimitedProblem,
};
use crate::problem::{ApiError, ApiResult, ErrorCode};
use crate::rate_limit::{self, Policy};
use crate::state::AppState;

/// An order for seats.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBooking {
    /// The listing.
    pub listing_id: Uuid,
    /// Seats, 1 to 20.
    #[validate(range(min = 1, max = 20, message = "must be between 1 and 20"))]
    #[schema(minimum = 1, maximum = 20)]
    pub quantity: i32,
}

/// Books seats (customers). Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/bookings", operation_id = "createBooking", tag = "bookings", request_body = CreateBooking,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
        description = "replays the first answer for the same key and body")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = BookingView, description = "booked; replays carry `Idempotent-Replayed: true`",
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`; absent otherwise"))),
        (status = 403, description = "only customers book", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 404, description = "unknown listing", body = NotFoundProblem, content_type = "application/problem+json"),
        (status = 402, description = "`payment_failed`: the payment provider refused the payment; nothing was kept", body = PaymentFailedProblem, content_type = "application/problem+json"),
        (status = 409, description = "`sold_out`; `too_many_holds`: the customer already holds `MAX_OPEN_HOLDS_PER_CUSTOMER` unpaid bookings (nothing changes); or `conflict`: the listing cannot be booked, or the first request with this `Idempotency-Key` was still being served after this one waited 2 s for its answer (a first request that ended in an error, a `503` included, leaves the key free)", body = BookingConflictProblem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, or `idempotency_key_reused`", body = IdempotentValidationProblem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: more than `RATE_LIMIT_BOOKINGS_PER_MINUTE` (30) booking requests from this user in a minute", body = RateLimitedProblem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "seconds until the window resets"),
                ("RateLimit-Policy" = String, description = "`\"bookings\";q=<quota>;w=60`"),
                ("RateLimit" = String, description = "`\"bookings\";r=<remaining>;t=<seconds to reset>`"))),
    ))]
#[post("/bookings")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
    body: StrictJson<CreateBooking>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Customer])?;
    let policy = Policy {
        name: "bookings",
        quota: state.settings.rate_limits.bookings_per_minute,
        window: Duration::from_secs(60),
    };
    let standing = rate_limit::hit(
        &state.redis,
        &state.local_counters,
        &state.settings.redis_prefix,
        policy,
        &caller.id.to_string(),
    )
    .await
    .check()?;
    let StrictJson(order) = body;
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    idempotency::run(
        &state.db,
        &req,
        caller.id,
        StatusCode::CREATED,
        |key| async { book(&state, &caller, order, key, request_id).await },
    )
    .await
    .map(|mut response| {
        standing.write_to(response.headers_mut());
        response
    })
}

async fn book(
    state: &AppState,
    caller: &AuthUser,
    order: CreateBooking,
    idempotency_key: Option<String>,
    request_id: Option<String>,
) -> ApiResult<BookingView> {
    let gateway = state.providers.payments.as_ref();
    let new = NewBooking {
        customer_id: caller.id,
        listing_id: order.listing_id,
        quantity: order.quantity,
        idempotency_key,
        request_id: request_id.clone(),
        max_open_holds: Some(state.settings.max_open_holds_per_customer),
    };
    let listing_id = new.listing_id;
    let quantity = new.quantity;
    let key = new.idempotency_key.clone();
    let booked = checkout::book(&state.db, state.settings.booking_hold, gateway, new).await;
    let created = match booked {
        Ok(booked) => booked,
        // The key made a booking before whose answer was never stored: its request died
        // after the commit, or failed after it (a lost connection: `503`, the key released).
        // Answer with that booking if it is the same order.
        Err(BookingError::DuplicateKey) => {
            let key = key.as_deref().unwrap_or_default();
            return earlier_booking(state, caller, key, listing_id, quantity).await;
        }
        Err(e) => return Err(e.into()),
    };
    let fetched = BookingView::fetch(&state.db, created.booking.id)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("booking {} vanished", created.booking.id))
        })?;
    Ok(fetched.for_viewer(caller.id))
}

async fn earlier_booking(
    state: &AppState,
    caller: &AuthUser,
    key: &str,
    listing_id: Uuid,
    quantity: i32,
) -> ApiResult<BookingView> {
    let booking = booking_rows::Entity::find()
        .filter(booking_rows::Column::CustomerId.eq(caller.id))
        .filter(booking_rows::Column::IdempotencyKey.eq(key))
        .one(&state.db)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                ErrorCode::Conflict,
                "a booking with this Idempotency-Key is being made",
            )
        })?;
    if booking.listing_id != listing_id || booking.quantity != quantity {
        return Err(ApiError::idempotency_key_reused());
    }
    Ok(BookingView::load(&state.db, booking, caller.id).await?)
}
