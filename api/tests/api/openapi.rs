//! The OpenAPI document against the server: every reference resolves, and the answers that
//! follow from how an operation is served (a wrong content type, broken JSON, no token) are
//! documented on each operation that gives them. `deploy/schemathesis.sh` checks the same at
//! large; these pin the cases it first found.

use std::collections::BTreeSet;

use orderly_testing::PgServer;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

/// The served document.
pub async fn document(app: &TestApp) -> Value {
    let resp = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// The status codes `method path` documents (`"200"`, `"401"`...).
pub fn documented_statuses(doc: &Value, path: &str, method: &Method) -> BTreeSet<String> {
    doc["paths"][path][method.as_str().to_lowercase()]["responses"]
        .as_object()
        .map(|responses| responses.keys().cloned().collect())
        .unwrap_or_default()
}

/// A documented path with a placeholder for each parameter.
pub fn concrete(path: &str) -> String {
    let placeholder = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                placeholder
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `$ref` in `value`.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                match (key.as_str(), member.as_str()) {
                    ("$ref", Some(reference)) => out.push(reference.to_owned()),
                    _ => references(member, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_reference_in_the_openapi_document_resolves() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut found = Vec::new();
    references(&doc, &mut found);
    // The list ordering is named only by a query parameter: the reference that once dangled.
    assert!(
        found.contains(&"#/components/schemas/ListingOrdering".to_owned()),
        "{found:?}"
    );
    assert!(
        found.contains(&"#/components/responses/Unauthorized".to_owned()),
        "{found:?}"
    );
    let dangling: BTreeSet<&String> = found
        .iter()
        .filter(|r| !r.starts_with("#/") || doc.pointer(&r[1..]).is_none())
        .collect();
    assert!(dangling.is_empty(), "dangling references: {dangling:?}");
}

/// Each documented operation whose body is a JSON object read by `StrictJson`, with its method.
fn json_body_operations(doc: &Value) -> Vec<(String, Method)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            if schema["$ref"].is_string() {
                found.push((path.clone(), method.to_uppercase().parse().unwrap()));
            }
        }
    }
    found
}

#[tokio::test]
async fn every_json_body_answers_a_wrong_content_type_and_broken_json_as_documented() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    // An admin passes every extractor before the body's (roles are checked after them).
    let admin = app.admin().await;
    let operations = json_body_operations(&doc);
    assert!(
        operations.contains(&("/api/v1/bookings".to_owned(), Method::POST)),
        "{operations:?}"
    );
    for (path, method) in &operations {
        let statuses = documented_statuses(&doc, path, method);
        for (content_type, body, status, code) in [
            (
                "text/plain",
                "{}",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            (
                "application/json",
                "{",
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
        ] {
            let resp = app
                .client
                .request(method.clone(), app.url(&concrete(path)))
                .bearer_auth(&admin.access)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                status,
                "{method} {path} with {content_type} {body}"
            );
            assert_problem(resp, status, code).await;
            assert!(
                statuses.contains(status.as_str()),
                "{method} {path} answers {status} but documents only {statuses:?}"
            );
        }
    }
}

/// `schema`, or what its `$ref` names.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => doc.pointer(&reference[1..]).unwrap(),
        None => schema,
    }
}

/// The members `schema` requires (through `$ref` and `allOf`), each with its JSON type.
fn required_members(doc: &Value, schema: &Value) -> Vec<(String, String)> {
    let schema = resolve(doc, schema);
    let mut out = Vec::new();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(required_members(doc, part));
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap();
        let member = resolve(doc, &schema["properties"][name]);
        let kind = member["type"].as_str().unwrap_or("object");
        out.push((name.to_owned(), kind.to_owned()));
    }
    out
}

fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        _ => value.is_object(),
    }
}

#[tokio::test]
async fn a_not_ready_answer_is_the_problem_the_document_describes() {
    // Only PostgreSQL decides readiness (Redis being down is reported, not refused).
    let pg = PgServer::start().await;
    let app = spawn_app_with(&[("DATABASE_URL", pg.url.as_str())]).await;
    let doc = document(&app).await;
    pg.stop();

    let resp = app.get("/ready", None).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let documented = &doc["paths"]["/ready"]["get"]["responses"]["503"]["content"];
    let schema = &documented[content_type.as_str()]["schema"];
    assert!(
        schema.is_object(),
        "answered {content_type}, documented {documented}"
    );
    let members = required_members(&doc, schema);
    for required in ["status", "code", "checks"] {
        assert!(
            members.iter().any(|(name, _)| name == required),
            "{members:?}"
        );
    }
    for (name, kind) in &members {
        assert!(
            has_type(&body[name], kind),
            "`{name}` should be {kind}: {body}"
        );
    }
}

/// Every operation of the document: path, method and the operation object.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            found.push((path.clone(), method.clone(), operation));
        }
    }
    found
}

#[tokio::test]
async fn every_operation_has_its_own_camel_case_operation_id_and_a_tag() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut seen = BTreeSet::new();
    for (path, method, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(
            id.starts_with(|c: char| c.is_ascii_lowercase())
                && id.chars().all(|c| c.is_ascii_alphanumeric()),
            "{method} {path}: operationId `{id}` is not camelCase"
        );
        assert!(
            seen.insert(id.to_owned()),
            "{method} {path}: operationId `{id}` is reused"
        );
        let tags = operation["tags"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default();
        assert_eq!(tags, 1, "{method} {path} should have one tag");
    }
    for id in [
        "listBookings",
        "createBooking",
        "getBooking",
        "cancelBooking",
        "listAdminJobs",
    ] {
        assert!(seen.contains(id), "no operation `{id}`: {seen:?}");
    }
}

#[tokio::test]
async fn every_response_is_described_and_the_document_lists_itself_and_its_server() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    for (path, method, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let response = resolve(&doc, response);
            let description = response["description"].as_str().unwrap_or_default();
            assert!(
                !description.trim().is_empty(),
                "{method} {path}: the {status} response has no description"
            );
        }
    }
    assert_eq!(
        doc["paths"]["/api/v1/openapi.json"]["get"]["operationId"],
        "getOpenApiDocument"
    );
    assert_eq!(doc["servers"][0]["url"], "/", "{}", doc["servers"]);
}

#[tokio::test]
async fn orderly_api_openapi_prints_the_served_document_without_any_configuration() {
    let app = spawn_app().await;
    let served = document(&app).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orderly-api"))
        .arg("openapi")
        .env_clear()
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, served);
}

/// The codes the problem answered by `operation` with `status` can carry: its `code` enum.
fn problem_codes(doc: &Value, operation: &Value, status: &str) -> BTreeSet<String> {
    let response = resolve(doc, &operation["responses"][status]);
    let schema = resolve(
        doc,
        &response["content"]["application/problem+json"]["schema"],
    );
    schema["allOf"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|part| part["properties"]["code"]["enum"].as_array().cloned())
        .flatten()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_problem_answer_names_the_codes_it_can_carry() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let known: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    assert!(
        known.contains("sold_out") && known.contains("internal_error"),
        "{known:?}"
    );
    for (path, method, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let response = resolve(&doc, response);
            // `/ready` answers its own problem, with what each dependency said.
            if response["content"]["application/problem+json"].is_null() || path == "/ready" {
                continue;
            }
            let codes = problem_codes(&doc, operation, status);
            assert!(
                !codes.is_empty(),
                "{method} {path} {status}: no `code` enum"
            );
            assert!(
                codes.is_subset(&known),
                "{method} {path} {status}: {codes:?}"
            );
        }
    }
    let booking = &doc["paths"]["/api/v1/bookings"]["post"];
    let cancel = &doc["paths"]["/api/v1/bookings/{id}/cancel"]["post"];
    let set = |codes: &[&str]| codes.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        problem_codes(&doc, booking, "409"),
        set(&["sold_out", "too_many_holds", "conflict"])
    );
    assert_eq!(
        problem_codes(&doc, booking, "402"),
        set(&["payment_failed"])
    );
    assert_eq!(
        problem_codes(&doc, booking, "422"),
        set(&["validation_failed", "idempotency_key_reused"])
    );
    assert_eq!(
        problem_codes(&doc, booking, "401"),
        set(&["not_authenticated", "invalid_token", "token_expired"])
    );
    assert_eq!(
        problem_codes(&doc, cancel, "409"),
        set(&["conflict", "cancellation_closed"])
    );
}

#[tokio::test]
async fn every_response_declares_x_request_id_and_creates_declare_idempotent_replayed() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    for (path, method, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let header = resolve(&doc, &resolve(&doc, response)["headers"]["X-Request-Id"]);
            assert!(
                header["schema"].is_object(),
                "{method} {path} {status}: no X-Request-Id header"
            );
        }
    }
    for path in ["/api/v1/bookings", "/api/v1/listings"] {
        let created = &doc["paths"][path]["post"]["responses"]["201"];
        assert!(
            created["headers"]["Idempotent-Replayed"].is_object(),
            "POST {path}: {created}"
        );
    }
}

#[tokio::test]
async fn response_schemas_require_what_is_always_sent_and_name_their_values() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    // Sent as `null` when unknown: required, and nullable.
    for (schema, field) in [
        ("UserView", "phone"),
        ("JobView", "last_error"),
        ("JobView", "booking_id"),
        ("AttemptView", "worker"),
        ("QueueStats", "paused_at"),
        ("ScheduleView", "last_run"),
        ("NotificationView", "sent_at"),
        ("Page_BookingView", "next"),
    ] {
        let required = schemas[schema]["required"].as_array().unwrap();
        assert!(required.iter().any(|r| r == field), "{schema}.{field}");
    }
    // Only shown to the booking's customer: optional.
    let payment = schemas["PaymentView"]["required"].as_array().unwrap();
    assert!(!payment.iter().any(|r| r == "client_secret"), "{payment:?}");
    // Fixed value sets are enums.
    for (schema, field, value) in [
        ("JobView", "status", "enqueued"),
        ("AttemptView", "outcome", "lost"),
        ("WorkerQueue", "queue", "payments"),
        ("Readiness", "status", "unavailable"),
        ("Received", "outcome", "replayed"),
        ("ScheduleView", "name", "daily_report"),
    ] {
        let values = resolve(&doc, &schemas[schema]["properties"][field])["enum"].clone();
        let values = values
            .as_array()
            .unwrap_or_else(|| panic!("{schema}.{field}"));
        assert!(
            values.iter().any(|v| v == value),
            "{schema}.{field}: {values:?}"
        );
    }
    // Pages reference their item schema rather than copying it.
    for (page, item) in [
        ("Page_ListingView", "ListingView"),
        ("Page_BookingView", "BookingView"),
        ("Page_JobView", "JobView"),
    ] {
        assert_eq!(
            schemas[page]["properties"]["results"]["items"]["$ref"],
            format!("#/components/schemas/{item}"),
            "{page}"
        );
    }
    // `null` clears a listing's description.
    let description = &schemas["UpdateListing"]["properties"]["description"];
    assert!(
        description["type"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "null")),
        "{description}"
    );
}
