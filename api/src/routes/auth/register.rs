//! `POST /api/v1/auth/register`.

use std::time::Duration;

use actix_web::{HttpResponse, post, web};
use chrono::Utc;
use orderly_db::users::{self, Role};
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set, SqlErr};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use super::session;
use super::views::Session;
use crate::auth::password;
use crate::client_addr::ClientAddr;
use crate::extract::StrictJson;
use crate::openapi::problems::{EmailTakenProblem, RateLimitedProblem, ValidationProblem};
use crate::problem::{ApiError, ApiResult, ErrorCode};
use crate::rate_limit::{self, Policy};
use crate::state::AppState;
use crate::validation::{E164, email_address, password_length, valid_name};

/// Roles one may register for (admins are made by `orderly-api create-admin`).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegisterRole {
    /// Books listings.
    Customer,
    /// Offers listings.
    Provider,
}

/// A new account.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// E-mail address (stored lower-cased).
    #[validate(custom(function = "email_address"))]
    #[schema(format = Email)]
    pub email: String,
    /// At least 10 characters, at most 1024 bytes.
    #[validate(custom(function = "password_length"))]
    #[schema(min_length = 10, max_length = 1024)]
    pub password: String,
    /// Display name, 1 to 100 characters (blanks aside).
    #[validate(custom(function = "valid_name"))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// E.164 phone number, e.g. `+4915112345678`.
    #[validate(regex(path = *E164, message = "must be an E.164 number such as +4915112345678"))]
    #[schema(pattern = r"^\+[1-9][0-9]{1,14}$")]
    pub phone: Option<String>,
    /// `customer` (default) or `provider`.
    pub role: Option<RegisterRole>,
}

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/api/v1/auth/register", operation_id = "registerUser", tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, description = "registered and signed in", body = Session),
    (status = 409, description = "`email_taken`", body = EmailTakenProblem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed`: a short password, a bad e-mail or phone, an unknown role, or unknown, missing or wrongly typed fields", body = ValidationProblem, content_type = "application/problem+json"),
    (status = 429, description = "`rate_limited`: more than `RATE_LIMIT_REGISTRATIONS_PER_HOUR` (10) registrations from this client address in an hour", body = RateLimitedProblem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "seconds until the window resets"),
                ("RateLimit-Policy" = String, description = "`\"registrations\";q=<quota>;w=3600`"),
                ("RateLimit" = String, description = "`\"registrations\";r=<remaining>;t=<seconds to reset>`"))),
))]
#[post("/auth/register")]
pub async fn register(
    client: ClientAddr,
    state: web::Data<AppState>,
    body: StrictJson<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let policy = Policy {
        name: "registrations",
        quota: state.settings.rate_limits.registrations_per_hour,
        window: Duration::from_secs(3600),
    };
    let standing = rate_limit::hit(
        &state.redis,
        &state.local_counters,
        &state.settings.redis_prefix,
        policy,
        &client.to_string(),
    )
    .await
    .check()?;
    let StrictJson(req) = body;
    let role = match req.role.unwrap_or(RegisterRole::Customer) {
        RegisterRole::Customer => Role::Customer,
        RegisterRole::Provider => Role::Provider,
    };
    let user = create_user(
        &state.db,
        &req.email,
        req.password,
        &req.name,
        req.phone,
        role,
    )
    .await?;
    let session = session::start(&state.db, &state.tokens, user).await?;
    let mut response = HttpResponse::Created();
    standing.apply(&mut response);
    Ok(response.json(session))
}

/// Creates a user with a hashed password; `409 email_taken` if the e-mail is in use.
pub async fn create_user(
    db: &DatabaseConnection,
    email: &str,
    password: String,
    name: &str,
    phone: Option<String>,
    role: Role,
) -> ApiResult<users::Model> {
    let password_hash = password::hash(password).await?;
    let now = Utc::now();
    let inserted = users::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(normalise_email(email)),
        password_hash: Set(password_hash),
        name: Set(name.trim().to_owned()),
        phone: Set(phone),
        role: Set(role),
        created_at: Set(now.into()),
        updated_at: Set(now.into()),
    }
    .insert(db)
    .await;
    match inserted {
        Ok(user) => {
            tracing::info!(user.id = %user.id, user.role = user.role.as_str(), "user registered");
            Ok(user)
        }
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(ApiError::conflict(
                ErrorCode::EmailTaken,
                "an account with this e-mail already exists",
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// E-mails are compared and stored trimmed and lower-cased.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}
