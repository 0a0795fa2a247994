//! `POST /api/v1/auth/logout`.

use actix_web::{HttpResponse, post, web};
use chrono::Utc;

use super::refresh::RefreshRequest;
use crate::auth::refresh;
use crate::extract::StrictJson;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Revokes the refresh token and every token rotated from the same login.
#[utoipa::path(post, path = "/api/v1/auth/logout", operation_id = "logOut", tag = "auth", request_body = RefreshRequest, responses(
    (status = 204, description = "signed out (also for an unknown token)"),
))]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    body: StrictJson<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    refresh::revoke(&state.db, &body.0.refresh, Utc::now()).await?;
    Ok(HttpResponse::NoContent().finish())
}
