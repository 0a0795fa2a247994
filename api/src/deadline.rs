//! The request deadline (`REQUEST_TIMEOUT_SECONDS`): a request still unanswered after it is
//! dropped (its database work rolled back with it) and answered `503` with `Retry-After`,
//! so that a stuck dependency holds neither a client nor a connection for long.
//!
//! It wraps the whole app: the request cannot be kept for the answer (routing needs it to be
//! the only handle), so the answer travels as an error whose response is made here, with the
//! request id that this middleware fixed before `request_context` read it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::HeaderValue;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};

use crate::middleware::{X_REQUEST_ID, request_id_of};
use crate::problem::ApiError;
use crate::state::AppState;

/// Runs the rest of the chain under the app's request deadline.
pub async fn request_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let Some(limit) = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.request_timeout)
    else {
        return next.call(req).await;
    };
    let request_id = HeaderValue::from_str(&request_id_of(&req)).ok();
    if let Some(id) = &request_id {
        req.headers_mut().insert(X_REQUEST_ID, id.clone());
    }
    let path = req.path().to_owned();
    let cors = match (
        req.headers()
            .get(actix_web::http::header::ORIGIN)
            .and_then(|o| o.to_str().ok()),
        req.app_data::<web::Data<AppState>>(),
    ) {
        (Some(origin), Some(state)) => crate::cors::cors_headers_for(&state.settings.cors, origin),
        _ => Vec::new(),
    };
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(answer) => answer,
        Err(_) => {
            tracing::warn!(
                request.id = ?request_id,
                http.path = %path,
                deadline_s = limit.as_secs(),
                "request past its deadline; answered 503"
            );
            let error = ApiError::Unavailable(format!(
                "the request took longer than {} s; try again shortly",
                limit.as_secs()
            ));
            let mut response = error.error_response();
            if let Some(id) = request_id {
                response.headers_mut().insert(X_REQUEST_ID, id);
            }
            // Made outside the CORS layer: its headers are added here.
            for (name, value) in cors {
                response.headers_mut().insert(name, value);
            }
            Err(InternalError::from_response(error, response).into())
        }
    }
}
