//! Cross-origin calls from browser frontends: the CORS layer (`CORS_ALLOWED_ORIGINS`,
//! `CORS_ALLOWED_HEADERS`), its refusals answered as problem JSON, and the CORS headers of
//! an answer made outside the layer (the request deadline's `503`).

use actix_cors::{Cors, CorsError};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, ResponseError, web};
use orderly_core::config::CorsSettings;

use crate::problem::ApiError;
use crate::state::AppState;

/// The CORS policy for browser frontends (`CORS_ALLOWED_ORIGINS`, `CORS_ALLOWED_HEADERS`),
/// exposing the headers a frontend reads: the request id, a replay, when to retry, and why a
/// token was refused.
pub fn cors(settings: &CorsSettings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(CORS_METHODS)
        .allowed_headers(settings.allowed_headers.iter().map(String::as_str))
        .expose_headers(EXPOSED_HEADERS.map(header::HeaderName::from_static))
        .max_age(3600);
    for origin in &settings.allowed_origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// The answer headers a frontend on another origin may read: the request id, a replay,
/// when to retry, why a token was refused, and where a rate limit stands.
pub const EXPOSED_HEADERS: [&str; 6] = [
    "x-request-id",
    "idempotent-replayed",
    "retry-after",
    "www-authenticate",
    "ratelimit",
    "ratelimit-policy",
];

/// The CORS headers of an answer made outside the CORS layer (the request deadline's `503`)
/// to a request from `origin`, when that origin is allowed: without them a browser shows a
/// CORS failure instead of the `503` and its `Retry-After`.
pub fn cors_headers_for(
    settings: &CorsSettings,
    origin: &str,
) -> Vec<(header::HeaderName, header::HeaderValue)> {
    let allowed = settings
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o == origin);
    let Ok(origin) = header::HeaderValue::from_str(origin) else {
        return Vec::new();
    };
    if !allowed {
        return Vec::new();
    }
    vec![
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin),
        (
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::HeaderValue::from_str(&EXPOSED_HEADERS.join(", "))
                .unwrap_or(header::HeaderValue::from_static("x-request-id")),
        ),
        (header::VARY, header::HeaderValue::from_static("Origin")),
    ]
}

/// The methods a cross-origin call may use.
const CORS_METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PATCH, Method::DELETE];

/// Answers what `actix-cors` refused (in plain text, `400`) as problem JSON: `403 forbidden`
/// when the origin, method or headers are not allowed, `400 bad_request` when the preflight
/// itself is malformed. Browsers fail any preflight that is not `2xx`; the body is for the
/// developer reading the network tab.
pub async fn cors_refusal_as_problem(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let refusal = res
        .response()
        .error()
        .and_then(|e| e.as_error::<CorsError>())
        .cloned();
    let Some(refusal) = refusal else {
        return Ok(res.map_into_boxed_body());
    };
    let error = cors_refusal(&refusal, res.request());
    let (req, _) = res.into_parts();
    Ok(ServiceResponse::new(req, error.error_response()))
}

/// What a refused cross-origin request is told.
fn cors_refusal(refusal: &CorsError, req: &HttpRequest) -> ApiError {
    let requested = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let allowed_headers = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.cors.allowed_headers.clone())
        .unwrap_or_default();
    match refusal {
        CorsError::OriginNotAllowed => ApiError::Forbidden(format!(
            "CORS: the origin `{}` may not call this API from a browser (not in CORS_ALLOWED_ORIGINS)",
            requested(header::ORIGIN)
        )),
        CorsError::MethodNotAllowed => ApiError::Forbidden(format!(
            "CORS: the method `{}` is not allowed cross-origin; allowed: {}",
            requested(header::ACCESS_CONTROL_REQUEST_METHOD),
            CORS_METHODS.map(|m| m.to_string()).join(", ")
        )),
        CorsError::HeadersNotAllowed => {
            let refused: Vec<String> = requested(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty() && !allowed_headers.contains(h))
                .map(|h| format!("`{h}`"))
                .collect();
            ApiError::Forbidden(format!(
                "CORS: the request header(s) {} may not be sent cross-origin; allowed: {} (CORS_ALLOWED_HEADERS)",
                refused.join(", "),
                allowed_headers.join(", ")
            ))
        }
        malformed => {
            ApiError::BadRequest(format!("CORS: malformed preflight request: {malformed}"))
        }
    }
}
