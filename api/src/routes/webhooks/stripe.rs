//! `POST /api/v1/webhooks/stripe`: Stripe's events about our PaymentIntents. The signature
//! is checked first (a bad one is `400` and changes nothing); a verified event is stored in
//! the inbox with the job that applies it and answered `200` at once, even when this
//! version cannot read it (its job then dies with the reason, retryable after an upgrade).

use actix_web::{HttpRequest, HttpResponse, post, web};
use orderly_core::config::PaymentSettings;
use orderly_domain::payment_events::{self, Received as Stored};
use orderly_providers::stripe::verify_signature;
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::problems::{BadRequestProblem, NotFoundProblem};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// The answer to an accepted event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// Always `true`.
    pub received: bool,
    /// What became of the event.
    pub outcome: EventOutcome,
}

/// What became of an accepted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// Kept, and applied by a job shortly.
    Stored,
    /// Seen before; nothing done.
    Replayed,
}

/// Receives a Stripe event (Stripe only; verified with `STRIPE_WEBHOOK_SECRET`).
#[utoipa::path(post, path = "/api/v1/webhooks/stripe", operation_id = "receiveStripeEvent", tag = "webhooks",
    request_body(content = String, content_type = "application/json", description = "the event, exactly as Stripe signed it"),
    params(("Stripe-Signature" = String, Header, description = "`t=<unix time>,v1=<HMAC-SHA256>`")),
    responses(
        (status = 200, body = Received, description = "accepted: stored for a job to apply, or seen before"),
        (status = 400, description = "missing, malformed, wrong or stale signature; nothing changed", body = BadRequestProblem, content_type = "application/problem+json"),
        (status = 404, description = "Stripe is not configured", body = NotFoundProblem, content_type = "application/problem+json"),
    ))]
#[post("/webhooks/stripe")]
pub async fn stripe(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let PaymentSettings::Stripe { webhook_secret, .. } = &state.settings.payments else {
        return Err(ApiError::NotFound("Stripe is not configured".into()));
    };
    let signature = req
        .headers()
        .get("Stripe-Signature")
        .and_then(|v| v.to_str().ok());
    let event = verify_signature(&body, signature, webhook_secret).map_err(|refused| {
        tracing::warn!(error = %refused, "refused a Stripe webhook");
        ApiError::BadRequest(refused.to_string())
    })?;
    // Verified, so the body is UTF-8.
    let payload = String::from_utf8_lossy(&body);
    let outcome =
        match payment_events::receive(&state.db, &event.id, &event.event_type, &payload).await? {
            Stored::Stored => EventOutcome::Stored,
            Stored::Replayed => EventOutcome::Replayed,
        };
    Ok(HttpResponse::Ok().json(Received {
        received: true,
        outcome,
    }))
}
