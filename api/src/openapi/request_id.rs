//! `X-Request-Id`, declared on every response: the middleware answers it on each one
//! (`middleware::request_context`), errors and shared answers included.

use utoipa::Modify;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr};

use super::common_errors::operations_mut;

/// Its name under `#/components/headers`.
const NAME: &str = "X-Request-Id";

/// Adds the header to `#/components/headers` and references it from every response.
#[derive(Debug)]
pub struct RequestIdHeader;

impl Modify for RequestIdHeader {
    fn modify(&self, openapi: &mut OpenApi) {
        let header = HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(128)),
            ))
            .description(Some(
                "the request's id: the caller's own `X-Request-Id` when it sent a printable one \
                 of up to 128 characters, else a new UUID; the logs of the API and of every job \
                 the request caused carry it",
            ))
            .build();
        let reference = || RefOr::Ref(Ref::new(format!("#/components/headers/{NAME}")));
        let components = openapi.components.get_or_insert_with(Default::default);
        components.headers.insert(NAME.to_owned(), RefOr::T(header));
        // Shared answers are declared once under `#/components/responses`; the others inline.
        for response in components.responses.values_mut() {
            if let RefOr::T(response) = response {
                response.headers.insert(NAME.to_owned(), reference());
            }
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response.headers.insert(NAME.to_owned(), reference());
                    }
                }
            }
        }
    }
}
