//! Typed error answers: a problem whose `code` is narrowed to the [`ErrorCode`]s one answer
//! can carry, so that a generated client can switch on them. Each schema is `Problem` with
//! `code` restricted to an enum; operations name them as the body of their problem answers,
//! and the shared answers (`common_errors`) build theirs with [`narrowed`].

use std::borrow::Cow;

use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::problem::{ErrorCode, Problem};

/// `Problem` with `code` one of `codes`.
pub fn narrowed(codes: &[ErrorCode]) -> Schema {
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes.iter().map(|code| code.as_str())));
    AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("code", code)
                .required("code"),
        )
        .into()
}

/// Declares a named problem schema whose `code` is one of the listed [`ErrorCode`]s.
macro_rules! problems {
    ($($(#[doc = $doc:literal])+ $name:ident = [$($code:ident),+ $(,)?];)+) => {$(
        $(#[doc = $doc])+
        #[derive(Debug)]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T(narrowed(&[$(ErrorCode::$code),+]))
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                schemas.push((Problem::name().into_owned(), Problem::schema()));
                <Problem as ToSchema>::schemas(schemas);
            }
        }
    )+};
}

problems! {
    /// `400` of a webhook: `bad_request` (the signature is missing, malformed, wrong or old).
    BadRequestProblem = [BadRequest];
    /// `401` of a sign-in: `invalid_credentials`.
    InvalidCredentialsProblem = [InvalidCredentials];
    /// `401` of a refresh token refused.
    RefreshRefusedProblem = [InvalidToken, TokenExpired, TokenRevoked, TokenReused];
    /// `402`: `payment_failed`.
    PaymentFailedProblem = [PaymentFailed];
    /// `403`: `forbidden`.
    ForbiddenProblem = [Forbidden];
    /// `404`: `not_found`.
    NotFoundProblem = [NotFound];
    /// `409`: `conflict`.
    ConflictProblem = [Conflict];
    /// `409` of a registration: `email_taken`.
    EmailTakenProblem = [EmailTaken];
    /// `409` of a booking: `sold_out`, `too_many_holds` or `conflict`.
    BookingConflictProblem = [SoldOut, TooManyHolds, Conflict];
    /// `409` of a cancel: `conflict` or `cancellation_closed`.
    CancelConflictProblem = [Conflict, CancellationClosed];
    /// `422`: `validation_failed`.
    ValidationProblem = [ValidationFailed];
    /// `422` of a `POST` that honours `Idempotency-Key`: `validation_failed` or
    /// `idempotency_key_reused`.
    IdempotentValidationProblem = [ValidationFailed, IdempotencyKeyReused];
    /// `429`: `rate_limited`.
    RateLimitedProblem = [RateLimited];
}
