//! What the OpenAPI 3.1 document (`routes::openapi_document::ApiDoc`, generated from the
//! handlers' annotations) is built with: the error answers every operation shares
//! ([`CommonErrors`]), each problem answer's `code` narrowed to the codes it can carry
//! ([`problems`]), the request-id header and the paged lists' items by reference.

mod common_errors;
mod pages;
pub mod problems;
mod request_id;

pub use self::common_errors::{CommonErrors, PROBLEM_JSON};
pub use self::pages::PageItemsByReference;
pub use self::request_id::RequestIdHeader;
