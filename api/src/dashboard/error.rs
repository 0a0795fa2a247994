//! Why a dashboard request was not served: each answers with an HTML page (or, without a
//! session, the way to the login page), never with the JSON API's problem documents.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::views::{html, render, see_other};
use crate::problem::ApiError;

/// Why a dashboard request was not served.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// No live session: `303` to the login page, coming back to `next` afterwards.
    #[error("sign in first")]
    SignIn {
        /// Where to go after signing in (a dashboard path).
        next: String,
    },
    /// `403`: not an admin, or a form that is not this session's (CSRF).
    #[error("{0}")]
    Forbidden(String),
    /// `404`.
    #[error("{0}")]
    NotFound(String),
    /// `409`: the job's state does not allow the action.
    #[error("{0}")]
    Conflict(String),
    /// `422`: a filter or form value that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// `500`, or `503` when PostgreSQL or Redis is down (judged as the JSON API judges
    /// it); the cause is logged, not shown.
    #[error(transparent)]
    Internal(ApiError),
}

impl From<anyhow::Error> for DashboardError {
    fn from(error: anyhow::Error) -> Self {
        Self::Internal(ApiError::Internal(error))
    }
}

impl From<redis::RedisError> for DashboardError {
    fn from(error: redis::RedisError) -> Self {
        Self::Internal(error.into())
    }
}

impl From<sea_orm::DbErr> for DashboardError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Internal(error.into())
    }
}

impl From<orderly_admin::jobs::ActionError> for DashboardError {
    fn from(error: orderly_admin::jobs::ActionError) -> Self {
        use orderly_admin::jobs::ActionError;
        match error {
            ActionError::NotFound(_) => Self::NotFound(error.to_string()),
            ActionError::WrongState { .. } => Self::Conflict(error.to_string()),
            ActionError::Db(db) => db.into(),
        }
    }
}

impl ResponseError for DashboardError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal(error) => error.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (title, message) = match self {
            Self::SignIn { next } => {
                let query =
                    serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                return see_other(&format!("{}?{query}", super::LOGIN));
            }
            Self::Forbidden(why) => ("Not allowed", why.clone()),
            Self::NotFound(why) => ("Not found", why.clone()),
            Self::Conflict(why) => ("Not possible now", why.clone()),
            Self::Invalid(why) => ("Cannot read that", why.clone()),
            Self::Internal(error) if status == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(error = ?error, "a dependency is down; dashboard answered 503");
                (
                    "Unavailable",
                    "PostgreSQL or Redis cannot be reached; try again shortly.".to_owned(),
                )
            }
            Self::Internal(error) => {
                tracing::error!(error = ?error, "dashboard request failed");
                (
                    "Something went wrong",
                    "An unexpected error occurred; it has been logged.".to_owned(),
                )
            }
        };
        let page = render(
            "error.html",
            json!({ "title": title, "message": message, "status": status.as_u16(), "admin": null }),
        )
        // The error page itself failing to render must still answer something readable.
        .unwrap_or_else(|_| format!("<!doctype html><title>{status}</title><p>{status}</p>"));
        let mut answer = html(status, page);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            answer.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::problem::RETRY_AFTER_OUTAGE_S),
            );
        }
        answer
    }
}
