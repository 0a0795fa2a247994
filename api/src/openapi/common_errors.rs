//! The error answers that follow from how an operation is served rather than from what it
//! does, added to every operation they apply to, so that no annotation has to list them and
//! none can forget one: schemathesis holds each operation to the statuses it documents.
//!
//! What decides them, operation by operation:
//! - a bearer security requirement: the `AuthUser` extractor answers `401`;
//! - a JSON request body whose schema is a named component: it is read by `StrictJson`,
//!   which answers `400` (not JSON), `413` (over 1 MiB), `415` (not `application/json`)
//!   and `422` (fields at fault); any other request body (the raw bytes a webhook verifies)
//!   can still be too large (`413`);
//! - query parameters: they are read by `StrictQuery` or `query::parse`, which answer `422`;
//! - a path under `/api/v1/`: it reads PostgreSQL or Redis, so it can answer `503` (a
//!   dependency is down) and, for anything unforeseen, `500`.
//!
//! Each answer is defined once, under `#/components/responses`, and referenced; an
//! operation that documents a status itself (with what it means there) keeps its own.

use utoipa::Modify;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};

use super::problems::narrowed;
use crate::problem::ErrorCode;

/// The content type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One shared error answer.
#[derive(Debug, Clone, Copy)]
struct CommonError {
    /// Its name under `#/components/responses`.
    name: &'static str,
    status: u16,
    description: &'static str,
    /// The codes its problem can carry.
    codes: &'static [ErrorCode],
    /// A header it always carries: name and meaning.
    header: Option<(&'static str, &'static str)>,
}

const MALFORMED_JSON: CommonError = CommonError {
    name: "MalformedJson",
    status: 400,
    description: "`malformed_json`: the body is not JSON (`bad_request`: it could not be read)",
    codes: &[ErrorCode::MalformedJson, ErrorCode::BadRequest],
    header: None,
};

const UNAUTHORIZED: CommonError = CommonError {
    name: "Unauthorized",
    status: 401,
    description: "`not_authenticated` (no bearer token), `invalid_token` or `token_expired`",
    codes: &[
        ErrorCode::NotAuthenticated,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
    ],
    header: Some(("WWW-Authenticate", "`Bearer`")),
};

const PAYLOAD_TOO_LARGE: CommonError = CommonError {
    name: "PayloadTooLarge",
    status: 413,
    description: "`payload_too_large`: the body is over its limit (1 MiB for JSON bodies)",
    codes: &[ErrorCode::PayloadTooLarge],
    header: None,
};

const UNSUPPORTED_MEDIA_TYPE: CommonError = CommonError {
    name: "UnsupportedMediaType",
    status: 415,
    description: "`unsupported_media_type`: the body is not sent as `application/json`",
    codes: &[ErrorCode::UnsupportedMediaType],
    header: None,
};

const VALIDATION_FAILED: CommonError = CommonError {
    name: "ValidationFailed",
    status: 422,
    description: "`validation_failed`: unknown, missing or wrongly typed fields or parameters, \
                  or failed rules; `errors` names each field",
    codes: &[ErrorCode::ValidationFailed],
    header: None,
};

const INTERNAL_ERROR: CommonError = CommonError {
    name: "InternalError",
    status: 500,
    description: "`internal_error`: something unforeseen; the body carries no cause (the log \
                  does, with the request id)",
    codes: &[ErrorCode::InternalError],
    header: None,
};

const UNAVAILABLE: CommonError = CommonError {
    name: "Unavailable",
    status: 503,
    description: "`unavailable`: PostgreSQL, Redis or the payment provider cannot be reached; \
                  service resumes by itself",
    codes: &[ErrorCode::Unavailable],
    header: Some(("Retry-After", "seconds to wait before trying again")),
};

const ALL: [CommonError; 7] = [
    MALFORMED_JSON,
    UNAUTHORIZED,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION_FAILED,
    INTERNAL_ERROR,
    UNAVAILABLE,
];

impl CommonError {
    fn response(&self) -> utoipa::openapi::Response {
        let problem = ContentBuilder::new()
            .schema(Some(narrowed(self.codes)))
            .build();
        let mut response = ResponseBuilder::new()
            .description(self.description)
            .content(PROBLEM_JSON, problem);
        if let Some((name, description)) = self.header {
            let header = HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some(description))
                .build();
            response = response.header(name, header);
        }
        response.build()
    }
}

/// Adds the shared error answers to every operation they apply to (see the module's doc).
#[derive(Debug)]
pub struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for error in ALL {
            components
                .responses
                .insert(error.name.to_owned(), RefOr::T(error.response()));
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            for operation in operations_mut(item) {
                for error in applicable(path, operation) {
                    operation
                        .responses
                        .responses
                        .entry(error.status.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(error.name)));
                }
            }
        }
    }
}

pub(super) fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The shared answers `operation` at `path` can give.
fn applicable(path: &str, operation: &Operation) -> Vec<CommonError> {
    let mut errors = Vec::new();
    match operation.request_body.as_ref() {
        Some(RefOr::T(body)) if reads_json_object(body) => errors.extend([
            MALFORMED_JSON,
            PAYLOAD_TOO_LARGE,
            UNSUPPORTED_MEDIA_TYPE,
            VALIDATION_FAILED,
        ]),
        Some(_) => errors.push(PAYLOAD_TOO_LARGE),
        None => {}
    }
    let has_query = operation.parameters.iter().flatten().any(|p| {
        matches!(p, RefOr::T(parameter) if matches!(parameter.parameter_in, ParameterIn::Query))
    });
    if has_query {
        errors.push(VALIDATION_FAILED);
    }
    let needs_bearer = operation
        .security
        .iter()
        .flatten()
        .any(|requirement| *requirement != SecurityRequirement::default());
    if needs_bearer {
        errors.push(UNAUTHORIZED);
    }
    if path.starts_with("/api/v1/") {
        errors.extend([INTERNAL_ERROR, UNAVAILABLE]);
    }
    errors
}

/// Whether the body is a JSON document described by a named schema: what `StrictJson<T>`
/// reads (the webhook's raw body is an inline string).
fn reads_json_object(body: &RequestBody) -> bool {
    body.content
        .get("application/json")
        .is_some_and(|content| match content {
            RefOr::T(content) => matches!(content.schema, Some(RefOr::Ref(_))),
            RefOr::Ref(_) => false,
        })
}
