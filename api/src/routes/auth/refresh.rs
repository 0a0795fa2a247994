//! `POST /api/v1/auth/refresh`.

use actix_web::{HttpResponse, post, web};
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;
use validator::Validate;

use super::views::TokenPair;
use crate::auth::refresh::{RefreshError, rotate};
use crate::extract::StrictJson;
use crate::openapi::problems::RefreshRefusedProblem;
use crate::problem::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// A refresh token to exchange (or revoke).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token.
    #[validate(length(min = 1, max = 512, message = "must not be empty"))]
    #[schema(min_length = 1, max_length = 512)]
    pub refresh: String,
}

/// Exchanges a refresh token for a new pair; the old one stops working.
#[utoipa::path(post, path = "/api/v1/auth/refresh", operation_id = "refreshTokens", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, description = "a new token pair", body = TokenPair),
    (status = 401, description = "`invalid_token`, `token_expired`, `token_revoked` or `token_reused` (a used token presented again: every token of that login is revoked)", body = RefreshRefusedProblem, content_type = "application/problem+json"),
))]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    body: StrictJson<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let now = Utc::now();
    let (user, refresh) = rotate(&state.db, &body.0.refresh, now)
        .await
        .map_err(|e| match e {
            RefreshError::Unknown => ApiError::unauthorized(ErrorCode::InvalidToken, e.to_string()),
            RefreshError::Expired => ApiError::unauthorized(ErrorCode::TokenExpired, e.to_string()),
            RefreshError::Revoked => ApiError::unauthorized(ErrorCode::TokenRevoked, e.to_string()),
            RefreshError::Reused => ApiError::unauthorized(ErrorCode::TokenReused, e.to_string()),
            RefreshError::Db(db) => db.into(),
        })?;
    let access = state.tokens.issue_access(user.id, user.role, now)?;
    Ok(HttpResponse::Ok().json(TokenPair { access, refresh }))
}
