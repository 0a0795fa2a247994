//! `POST /api/v1/auth/login`.

use actix_web::{HttpResponse, post, web};
use orderly_db::users;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use utoipa::ToSchema;
use validator::Validate;

use super::register::normalise_email;
use super::session;
use super::views::Session;
use crate::auth::login_limit::LoginLimiter;
use crate::auth::password;
use crate::client_addr::ClientAddr;
use crate::extract::StrictJson;
use crate::openapi::problems::{InvalidCredentialsProblem, RateLimitedProblem};
use crate::problem::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Credentials.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// E-mail address.
    #[validate(length(min = 1, max = 254, message = "must not be empty"))]
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
    /// Password.
    #[validate(length(min = 1, max = 1024, message = "must not be empty"))]
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

/// Signs in with e-mail and password.
#[utoipa::path(post, path = "/api/v1/auth/login", operation_id = "logIn", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, description = "signed in", body = Session),
    (status = 401, description = "`invalid_credentials`: wrong e-mail or password", body = InvalidCredentialsProblem, content_type = "application/problem+json"),
    (status = 429, description = "`rate_limited`: too many failures for this e-mail from this client address, or from this client address (failures for the e-mail from other clients only slow logins down, never refuse them)", body = RateLimitedProblem, content_type = "application/problem+json",
        headers(("Retry-After" = String, description = "seconds until the next attempt is counted"))),
))]
#[post("/auth/login")]
pub async fn login(
    client: ClientAddr,
    state: web::Data<AppState>,
    body: StrictJson<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let StrictJson(credentials) = body;
    let email = normalise_email(&credentials.email);
    let client = client.to_string();
    let limiter = LoginLimiter::new(
        &state.redis,
        &state.local_counters,
        &state.settings.redis_prefix,
        state.settings.login_limits,
        &email,
        &client,
    );
    if let Err(retry_after_s) = limiter.attempt().await {
        return Err(ApiError::RateLimited {
            retry_after_s,
            standing: None,
        });
    }
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(&state.db)
        .await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let valid = match password::verify(credentials.password, stored).await {
        Ok(valid) => valid,
        Err(busy) => {
            limiter.given_back().await;
            return Err(busy.into());
        }
    };
    let Some(user) = user.filter(|_| valid) else {
        limiter.failed().await;
        return Err(ApiError::unauthorized(
            ErrorCode::InvalidCredentials,
            "wrong e-mail or password",
        ));
    };
    limiter.succeeded().await;
    let session = session::start(&state.db, &state.tokens, user).await?;
    Ok(HttpResponse::Ok().json(session))
}
