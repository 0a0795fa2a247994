//! The caller, from `Authorization: Bearer <access token>`.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::{Ready, ready};
use orderly_db::users::Role;
use uuid::Uuid;

use crate::auth::tokens::TokenError;
use crate::problem::{ApiError, ErrorCode};
use crate::state::AppState;

/// An authenticated caller.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// The user's id.
    pub id: Uuid,
    /// The role the token was issued for.
    pub role: Role,
}

impl AuthUser {
    /// `403` unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this action is not allowed for the `{}` role",
                self.role.as_str()
            )))
        }
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|user| {
            user.ok_or_else(|| {
                ApiError::unauthorized(
                    ErrorCode::NotAuthenticated,
                    "this endpoint needs a bearer access token",
                )
            })
        }))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Option<AuthUser>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                ErrorCode::InvalidToken,
                "expected `Authorization: Bearer <token>`",
            )
        })?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("AppState is not registered")))?;
    let claims = state.tokens.verify_access(token).map_err(|e| match e {
        TokenError::Expired => ApiError::unauthorized(ErrorCode::TokenExpired, e.to_string()),
        TokenError::Invalid => ApiError::unauthorized(ErrorCode::InvalidToken, e.to_string()),
    })?;
    Ok(Some(AuthUser {
        id: claims.sub,
        role: claims.role,
    }))
}
