//! CORS for browser frontends: preflights that pass, refusals answered as problem JSON, and
//! the response headers a frontend may read.

use reqwest::{Method, Response, StatusCode};

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

const SHOP: &str = "https://shop.example";

/// A preflight from `origin` for a POST carrying `headers`.
async fn preflight(app: &TestApp, origin: &str, headers: &str) -> Response {
    app.client
        .request(Method::OPTIONS, app.url("/api/v1/bookings"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

/// A comma-separated header value as lower-case names.
fn names(resp: &Response, header: &str) -> Vec<String> {
    resp.headers()
        .get(header)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

#[tokio::test]
async fn cors_preflight_with_sentry_trace_and_baggage_from_an_allowed_origin_passes() {
    let app = spawn_app_with(&[("CORS_ALLOWED_ORIGINS", SHOP)]).await;
    let resp = preflight(
        &app,
        SHOP,
        "authorization,content-type,idempotency-key,x-request-id,sentry-trace,baggage",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["access-control-allow-origin"], SHOP);
    let allowed = names(&resp, "access-control-allow-headers");
    for header in [
        "sentry-trace",
        "baggage",
        "idempotency-key",
        "authorization",
    ] {
        assert!(allowed.iter().any(|h| h == header), "{header}: {allowed:?}");
    }
}

#[tokio::test]
async fn cors_preflight_from_a_refused_origin_is_a_403_problem_naming_the_origin() {
    let app = spawn_app_with(&[("CORS_ALLOWED_ORIGINS", SHOP)]).await;
    let resp = preflight(&app, "https://evil.example", "content-type").await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert!(resp.headers().contains_key("x-request-id"));
    let problem = assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("`https://evil.example`"), "{detail}");
    assert!(detail.contains("CORS_ALLOWED_ORIGINS"), "{detail}");
}

#[tokio::test]
async fn cors_preflight_with_a_refused_header_is_a_403_problem_naming_it() {
    let app = spawn_app_with(&[("CORS_ALLOWED_ORIGINS", SHOP)]).await;
    let resp = preflight(&app, SHOP, "content-type, X-Debug-Token").await;
    let problem = assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("`x-debug-token`"), "{detail}");
    assert!(!detail.contains("`content-type"), "{detail}");
    assert!(detail.contains("sentry-trace"), "{detail}");
}

#[tokio::test]
async fn cors_preflight_with_a_refused_method_is_a_403_problem() {
    let app = spawn_app_with(&[("CORS_ALLOWED_ORIGINS", SHOP)]).await;
    let resp = app
        .client
        .request(Method::OPTIONS, app.url("/api/v1/listings"))
        .header("origin", SHOP)
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(problem["detail"].as_str().unwrap().contains("`PUT`"));
}

#[tokio::test]
async fn cors_preflight_without_an_origin_is_a_400_problem() {
    let app = spawn_app().await;
    let resp = app
        .client
        .request(Method::OPTIONS, app.url("/api/v1/listings"))
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[tokio::test]
async fn cors_allowed_headers_configured_replace_the_defaults() {
    let app = spawn_app_with(&[
        ("CORS_ALLOWED_ORIGINS", SHOP),
        (
            "CORS_ALLOWED_HEADERS",
            "Content-Type, Authorization, X-Tenant",
        ),
    ])
    .await;
    let resp = preflight(&app, SHOP, "content-type,x-tenant").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = preflight(&app, SHOP, "content-type,sentry-trace").await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn cors_exposes_the_request_id_replay_retry_and_challenge_headers_on_actual_responses() {
    let app = spawn_app_with(&[("CORS_ALLOWED_ORIGINS", SHOP)]).await;
    // A success and an error (401 carries `WWW-Authenticate`).
    for path in ["/api/v1/listings", "/api/v1/me"] {
        let resp = app
            .client
            .get(app.url(path))
            .header("origin", SHOP)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            SHOP,
            "{path}"
        );
        let exposed = names(&resp, "access-control-expose-headers");
        for header in [
            "www-authenticate",
            "retry-after",
            "x-request-id",
            "idempotent-replayed",
        ] {
            assert!(
                exposed.iter().any(|h| h == header),
                "{path}: {header} in {exposed:?}"
            );
        }
    }
}
