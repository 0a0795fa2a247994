//! Turns responses that actix-web produced on its own (unknown route, wrong method, a path
//! that does not parse) into problem JSON, so that every error answers the same way.

use actix_web::ResponseError;
use actix_web::dev::ServiceResponse;
use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, CONTENT_TYPE};
use actix_web::middleware::ErrorHandlerResponse;

use crate::problem::ApiError;

/// The `ErrorHandlers` default handler.
pub fn plain_error_to_problem<B>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // Problem JSON, and the dashboard's own HTML error pages, already say what is wrong.
    let answered = res.headers().get(CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/problem+json")
            || v.as_bytes().starts_with(b"text/html")
    });
    if answered {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let error = match res.status() {
        StatusCode::NOT_FOUND => ApiError::NotFound("no such resource".into()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
            allowed: allowed_methods(&res),
        },
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: crate::extract::json::MAX_BODY_BYTES,
        },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        status if status.is_server_error() => {
            ApiError::Internal(anyhow::anyhow!("actix-web answered {status} on its own"))
        }
        status => ApiError::BadRequest(
            status
                .canonical_reason()
                .unwrap_or("the request could not be handled")
                .to_owned(),
        ),
    };
    let (req, _) = res.into_parts();
    let response = error.error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

/// The methods in a response's `Allow` header, kept when it becomes a problem.
fn allowed_methods<B>(res: &ServiceResponse<B>) -> Vec<Method> {
    res.headers()
        .get(ALLOW)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .filter_map(|m| Method::from_bytes(m.trim().as_bytes()).ok())
                .collect()
        })
        .unwrap_or_default()
}
