//! The one place where errors become HTTP answers: RFC 9457 problem JSON.
//!
//! Handlers return [`ApiError`]; a 5xx never carries its cause to the client — the cause goes
//! to the log (and Sentry) with the request id.

use crate::rate_limit::Standing;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use orderly_admin::jobs::ActionError;
use orderly_domain::bookings::BookingError;
use orderly_domain::payments::PaymentError;
use orderly_domain::reports::ReportError;
use orderly_providers::ProviderError;
use serde::Serialize;
use utoipa::ToSchema;

/// One field at fault.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field (`quantity`, `items.0.price`), or the parameter's name.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Declares [`ErrorCode`]: each code once, with its spelling on the wire.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $code:literal,)+) => {
        /// Every stable machine-readable `code` a problem can carry: the one list that the
        /// answers ([`ApiError::code`]) and the OpenAPI document (each operation's problem
        /// schemas, `openapi::problems`) are both made from.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ #[serde(rename = $code)] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &[ErrorCode] = &[$(Self::$variant),+];

            /// The code as written in a problem's `code`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }
        }
    };
}

/// A string enum of every code, as written.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("Stable machine-readable code of a problem."))
            .enum_values(Some(Self::ALL.iter().map(|code| code.as_str())))
            .into()
    }
}

impl ToSchema for ErrorCode {}

error_codes! {
    /// `400`: the body is not JSON.
    MalformedJson = "malformed_json",
    /// `400`: a request that cannot be understood for another reason (a bad webhook
    /// signature, a body that could not be read).
    BadRequest = "bad_request",
    /// `401`: no bearer token.
    NotAuthenticated = "not_authenticated",
    /// `401`: a token that is not one of ours, or whose user is gone.
    InvalidToken = "invalid_token",
    /// `401`: a token past its expiry.
    TokenExpired = "token_expired",
    /// `401`: a refresh token revoked by a logout.
    TokenRevoked = "token_revoked",
    /// `401`: a refresh token presented again after its rotation.
    TokenReused = "token_reused",
    /// `401`: wrong e-mail or password.
    InvalidCredentials = "invalid_credentials",
    /// `402`: the payment provider refused the payment.
    PaymentFailed = "payment_failed",
    /// `403`: visible, but not the caller's to change.
    Forbidden = "forbidden",
    /// `404`: absent, or not the caller's to see.
    NotFound = "not_found",
    /// `405`: the path is served under other methods (`Allow`).
    MethodNotAllowed = "method_not_allowed",
    /// `409`: the request conflicts with the current state.
    Conflict = "conflict",
    /// `409`: the e-mail address has an account already.
    EmailTaken = "email_taken",
    /// `409`: not enough seats left.
    SoldOut = "sold_out",
    /// `409`: a customer's cancel of a paid booking inside `CANCELLATION_CUTOFF_HOURS`.
    CancellationClosed = "cancellation_closed",
    /// `409`: a booking past `MAX_OPEN_HOLDS_PER_CUSTOMER` unpaid ones.
    TooManyHolds = "too_many_holds",
    /// `413`: the body is over its limit.
    PayloadTooLarge = "payload_too_large",
    /// `415`: the body is not sent as `application/json`.
    UnsupportedMediaType = "unsupported_media_type",
    /// `422`: fields or parameters at fault, named in `errors`.
    ValidationFailed = "validation_failed",
    /// `422`: an `Idempotency-Key` used before with a different request.
    IdempotencyKeyReused = "idempotency_key_reused",
    /// `429`: too many attempts (`Retry-After`).
    RateLimited = "rate_limited",
    /// `500`: something unforeseen; the body carries no cause.
    InternalError = "internal_error",
    /// `503`: a dependency is down (`Retry-After`).
    Unavailable = "unavailable",
}

/// The body of every error response (`application/problem+json`). Each operation's
/// answers narrow `code` to the codes it can give (`openapi::problems`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short human-readable summary of the kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// The fields at fault, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Every error an HTTP handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `400`: the body is not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// `400`: a request that cannot be understood for another reason.
    #[error("{0}")]
    BadRequest(String),
    /// `401`: no or bad credentials.
    #[error("{detail}")]
    Unauthorized {
        /// `not_authenticated`, `invalid_token`, `token_expired`, `invalid_credentials`...
        code: ErrorCode,
        /// Human-readable detail.
        detail: String,
    },
    /// `403`: visible but not the caller's to change.
    #[error("{0}")]
    Forbidden(String),
    /// `404`: absent, or not the caller's to see.
    #[error("{0}")]
    NotFound(String),
    /// `405`, with `Allow`.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods the path answers.
        allowed: Vec<actix_web::http::Method>,
    },
    /// `409`: the request conflicts with current state.
    #[error("{detail}")]
    Conflict {
        /// `conflict`, `email_taken`, `sold_out`...
        code: ErrorCode,
        /// Human-readable detail.
        detail: String,
    },
    /// `402`: the payment provider refused the payment (a declined card); nothing was kept.
    #[error("{0}")]
    PaymentFailed(String),
    /// `413`.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// `415`.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// `422`: fields at fault.
    #[error("{detail}")]
    Validation {
        /// `validation_failed` or `idempotency_key_reused`.
        code: ErrorCode,
        /// Human-readable detail.
        detail: String,
        /// The fields at fault.
        errors: Vec<FieldError>,
    },
    /// `429`, with `Retry-After` (and the `RateLimit` headers of a request-rate policy).
    #[error("too many attempts; retry in {retry_after_s} s")]
    RateLimited {
        /// Seconds until the caller may try again.
        retry_after_s: u64,
        /// The policy and where the caller stands against it, when one was exceeded.
        standing: Option<Standing>,
    },
    /// `503`: a dependency is down.
    #[error("{0}")]
    Unavailable(String),
    /// `500`: anything unexpected. Its chain is logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// `422 validation_failed` for the given fields.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        Self::Validation {
            code: ErrorCode::ValidationFailed,
            detail,
            errors,
        }
    }

    /// `422 validation_failed` for one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// `422 idempotency_key_reused`: the key came with a different request before.
    pub fn idempotency_key_reused() -> Self {
        Self::Validation {
            code: ErrorCode::IdempotencyKeyReused,
            detail: "this Idempotency-Key was used with a different request".into(),
            errors: vec![FieldError::new(
                "Idempotency-Key",
                "already used with a different request",
            )],
        }
    }

    /// `401` with the given code.
    pub fn unauthorized(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            detail: detail.into(),
        }
    }

    /// `409 conflict` with a specific code.
    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::MalformedJson(_) => ErrorCode::MalformedJson,
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Unauthorized { code, .. }
            | Self::Conflict { code, .. }
            | Self::Validation { code, .. } => *code,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            Self::PaymentFailed(_) => ErrorCode::PaymentFailed,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// The problem body for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let detail = match self {
            Self::Internal(_) => "an unexpected error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        };
        let errors = match self {
            Self::Validation { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        let code = self.code();
        Problem {
            kind: format!(
                "https://orderly.dev/problems/{}",
                code.as_str().replace('_', "-")
            ),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code,
            errors,
        }
    }
}

impl Standing {
    /// `Ok` under the quota; `429 rate_limited` with `Retry-After` and the headers over it.
    pub fn check(self) -> Result<Self, ApiError> {
        if self.exceeded {
            return Err(ApiError::RateLimited {
                retry_after_s: self.reset_s.max(1),
                standing: Some(self),
            });
        }
        Ok(self)
    }
}

/// Seconds a client is told to wait when a dependency is down.
pub const RETRY_AFTER_OUTAGE_S: u64 = 2;

impl ApiError {
    /// Whether this is a dependency being down (PostgreSQL or Redis unreachable), however
    /// deep in the error's chain the cause sits: then the answer is `503` with
    /// `Retry-After`, never a `500`.
    fn is_outage(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Internal(error) => error.chain().any(is_outage_cause),
            _ => false,
        }
    }
}

/// A connection-level failure: the server is down, restarting, refusing or unreachable.
fn is_outage_cause(error: &(dyn std::error::Error + 'static)) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    // Too many passwords being hashed: as busy as a database past its time limits.
    if error.is::<crate::auth::password::HashQueueFull>() {
        return true;
    }
    if let Some(db) = error.downcast_ref::<DbErr>() {
        return match db {
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                is_sqlx_outage(e)
            }
            _ => false,
        };
    }
    if let Some(e) = error.downcast_ref::<sea_orm::sqlx::Error>() {
        return is_sqlx_outage(e);
    }
    if let Some(e) = error.downcast_ref::<redis::RedisError>() {
        return e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout();
    }
    error.downcast_ref::<std::io::Error>().is_some()
}

fn is_sqlx_outage(error: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match error {
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed => true,
        // Connection exceptions (08…), the server shutting down or starting (57P01-57P03),
        // too many connections (53300); and a statement past `statement_timeout` (57014,
        // query_canceled) or a lock not granted within `lock_timeout` (55P03,
        // lock_not_available): the database is too busy right now, worth a retry.
        Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "53300" | "57014" | "55P03"
                )
        }),
        _ => false,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        if self.is_outage() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        match self {
            Self::MalformedJson(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PaymentFailed(_) => StatusCode::PAYMENT_REQUIRED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.is_outage() {
            if let Self::Internal(error) = self {
                tracing::warn!(error = ?error, "a dependency is down; answered 503");
            }
            let unavailable = Self::Unavailable(
                "a service Orderly depends on is down or too busy; try again shortly".into(),
            );
            let mut response = HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE);
            response.insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            ));
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_OUTAGE_S.to_string()));
            return response.json(match self {
                Self::Unavailable(_) => self.problem(),
                _ => unavailable.problem(),
            });
        }
        if let Self::Internal(error) = self {
            tracing::error!(error = ?error, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if let Self::Unauthorized { .. } = self {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Self::RateLimited {
            retry_after_s,
            standing,
        } = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
            if let Some(standing) = standing {
                standing.apply(&mut response);
            }
        }
        if let Self::MethodNotAllowed { allowed } = self {
            let allowed: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
            response.insert_header((header::ALLOW, allowed.join(", ")));
        }
        response.json(self.problem())
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Internal(anyhow::Error::new(error).context("database error"))
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        Self::Internal(anyhow::Error::new(error).context("redis error"))
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

/// Each way a booking operation can be refused, answered once (no catch-all: a new
/// variant does not compile until it has its answer).
impl From<BookingError> for ApiError {
    fn from(error: BookingError) -> Self {
        match error {
            BookingError::ListingNotFound => Self::NotFound("no such listing".into()),
            BookingError::NotFound => Self::NotFound("no such booking".into()),
            BookingError::SoldOut(seats) => Self::conflict(ErrorCode::SoldOut, seats.to_string()),
            BookingError::ListingUnavailable(why) => Self::conflict(ErrorCode::Conflict, why),
            BookingError::WrongStatus(_) => Self::conflict(ErrorCode::Conflict, error.to_string()),
            BookingError::CancellationClosed => {
                Self::conflict(ErrorCode::CancellationClosed, error.to_string())
            }
            BookingError::TooManyHolds(_) => {
                Self::conflict(ErrorCode::TooManyHolds, error.to_string())
            }
            BookingError::DuplicateKey => Self::conflict(
                ErrorCode::Conflict,
                "a booking with this Idempotency-Key is being made",
            ),
            BookingError::Payment(ProviderError::Permanent(why)) => {
                Self::PaymentFailed(why.describe())
            }
            BookingError::Payment(ProviderError::State(why)) => {
                Self::conflict(ErrorCode::Conflict, why.describe())
            }
            BookingError::Payment(ProviderError::Transient(why)) => {
                tracing::warn!(error = %why.describe(), "payment provider unavailable while booking");
                Self::Unavailable(
                    "the payment provider cannot be reached; try again shortly".into(),
                )
            }
            BookingError::Db(db) => db.into(),
        }
    }
}

/// Each way an operator's action on a job can be refused, answered once.
impl From<ActionError> for ApiError {
    fn from(error: ActionError) -> Self {
        match error {
            ActionError::NotFound(_) => Self::NotFound(error.to_string()),
            ActionError::WrongState { .. } => {
                Self::conflict(ErrorCode::Conflict, error.to_string())
            }
            ActionError::Db(db) => db.into(),
        }
    }
}

/// Each way a payment step can fail, answered once.
impl From<PaymentError> for ApiError {
    fn from(error: PaymentError) -> Self {
        match error {
            PaymentError::Booking(booking) => booking.into(),
            PaymentError::Provider(provider) => BookingError::Payment(provider).into(),
            PaymentError::Db(db) => db.into(),
            PaymentError::Inconsistent(_) | PaymentError::Unreadable(_) => {
                Self::Internal(anyhow::Error::new(error))
            }
        }
    }
}

/// Each way a daily report can fail, answered once.
impl From<ReportError> for ApiError {
    fn from(error: ReportError) -> Self {
        match error {
            ReportError::Db(db) => db.into(),
            // No report is ever made for such a day.
            ReportError::BadDay(_) => Self::NotFound(error.to_string()),
            // A report that does not (de)serialise is a bug or an incompatible version.
            ReportError::Unwritable(_) | ReportError::Unreadable { .. } => {
                Self::Internal(anyhow::Error::new(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_written_in_json_as_the_document_lists_it() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str(), "{code:?}");
        }
    }
}
