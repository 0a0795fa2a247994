//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated from the handlers'
//! annotations, with the error answers every operation shares added by
//! [`CommonErrors`], and each problem answer's `code` narrowed to the codes it can carry
//! (`openapi::problems`). It lists itself among its operations.

use actix_web::{HttpResponse, get};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::openapi::{CommonErrors, PageItemsByReference, RequestIdHeader};
use crate::problem::{ErrorCode, Problem};
use crate::routes::listings::list::ListingOrdering;
use crate::routes::{admin, auth, bookings, health, listings, webhooks};

/// This API's OpenAPI 3.1 document (what `orderly-api openapi` prints).
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "getOpenApiDocument", tag = "service",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object, content_type = "application/json")))]
#[get("/api/v1/openapi.json")]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Orderly API", version = "1", description = "Bookings and orders, with the work that follows them done reliably in the background."),
    // Relative: the document is served by the API it describes, so its paths resolve against
    // wherever it was fetched from (a generated client is given its base URL).
    servers((url = "/", description = "the server that serves this document")),
    // No credentials unless an operation asks for them (`bearer`).
    security(()),
    paths(
        health::health,
        health::ready,
        health::metrics,
        document,
        auth::register::register,
        auth::login::login,
        auth::refresh::refresh,
        auth::logout::logout,
        auth::me::me,
        listings::create::create,
        listings::list::list,
        listings::get::get,
        listings::update::update,
        bookings::create::create,
        bookings::list::list,
        bookings::get::get,
        bookings::cancel::cancel,
        webhooks::stripe::stripe,
        admin::reports::request_daily,
        admin::reports::daily,
        admin::schedules::list,
        admin::queues::list::list,
        admin::queues::pause::pause,
        admin::queues::resume::resume,
        admin::jobs::list::list,
        admin::jobs::retry_many::retry_many,
        admin::jobs::discard_many::discard_many,
        admin::jobs::retry::retry,
        admin::jobs::discard::discard,
    ),
    // Schemas that only parameters name (utoipa collects those of bodies by itself), and
    // the body of every shared error answer.
    components(schemas(ListingOrdering, Problem, ErrorCode)),
    modifiers(&BearerAuth, &CommonErrors, &RequestIdHeader, &PageItemsByReference),
    tags(
        (name = "service", description = "Health, readiness, metrics and this document"),
        (name = "auth", description = "Accounts and tokens"),
        (name = "listings", description = "What gets booked"),
        (name = "bookings", description = "Orders for seats, paid and followed up in the background"),
        (name = "webhooks", description = "Calls from payment providers, verified by signature"),
        (name = "admin", description = "Operations: reports, schedules and queues (admins only)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
