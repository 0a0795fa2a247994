//! `POST /api/v1/webhooks/stripe`: Stripe's events about our PaymentIntents. The signature
//! is checked first (a bad one is `400` and changes nothing); each event is applied once,
//! in one transaction with the record of its id, and answered at once (any work it causes
//! is a job).

use actix_web::{HttpRequest, HttpResponse, post, web};
use orderly_shared::config::PaymentSettings;
use orderly_shared::domain::payment_events::{self, Applied};
use orderly_shared::providers::stripe::verify_event;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;

/// The answer to an accepted event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// Always `true`.
    pub received: bool,
    /// `applied`, `replayed` (seen before, nothing done) or `unknown_payment`.
    pub outcome: &'static str,
}

/// Receives a Stripe event (Stripe only; verified with `STRIPE_WEBHOOK_SECRET`).
#[utoipa::path(post, path = "/api/v1/webhooks/stripe", tag = "webhooks",
    request_body(content = String, content_type = "application/json", description = "the event, exactly as Stripe signed it"),
    params(("Stripe-Signature" = String, Header, description = "`t=<unix time>,v1=<HMAC-SHA256>`")),
    responses(
        (status = 200, body = Received, description = "accepted: applied, or seen before"),
        (status = 400, description = "missing, malformed, wrong or stale signature; nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Stripe is not configured", body = Problem, content_type = "application/problem+json"),
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
    let event = verify_event(&body, signature, webhook_secret).map_err(|refused| {
        tracing::warn!(error = %refused, "refused a Stripe webhook");
        ApiError::BadRequest(refused.to_string())
    })?;
    let outcome = match payment_events::apply(&state.db, &event).await? {
        Applied::Applied => "applied",
        Applied::Replayed => "replayed",
        Applied::UnknownPayment => "unknown_payment",
    };
    Ok(HttpResponse::Ok().json(Received {
        received: true,
        outcome,
    }))
}
