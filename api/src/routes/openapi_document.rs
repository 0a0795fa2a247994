//! `GET /api/v1/openapi.json`: the OpenAPI document, which lists itself among its operations.

use actix_web::{HttpResponse, get};
use utoipa::OpenApi;

use crate::openapi::ApiDoc;

/// This API's OpenAPI 3.1 document (what `orderly-api openapi` prints).
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "getOpenApiDocument", tag = "service",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object, content_type = "application/json")))]
#[get("/api/v1/openapi.json")]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
