//! `/health`, `/ready`, `/metrics`, the OpenAPI document, docs, and cross-cutting behaviour.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{RedisServer, TestApp, assert_problem, spawn_app, spawn_app_with};
use crate::openapi::{concrete, documented_statuses};

#[tokio::test]
async fn health_answers_ok_while_the_process_runs() {
    let app = spawn_app().await;
    let resp = app.get("/health", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

#[tokio::test]
async fn ready_answers_ok_when_postgres_and_redis_answer() {
    let app = spawn_app().await;
    let resp = app.get("/ready", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
}

#[tokio::test]
async fn ready_stays_ok_without_redis_and_names_it_in_its_checks() {
    let mut redis = RedisServer::start().await;
    let app = spawn_app_with(&[("REDIS_URL", &redis.url.clone())]).await;
    assert_eq!(app.get("/ready", None).await.status(), StatusCode::OK);

    redis.stop();
    let resp = app.get("/ready", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "ok", "{body}");
    assert_ne!(body["checks"]["redis"], "ok", "{body}");
}

/// The value of one series in a Prometheus text scrape, if present.
fn series(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        line.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn metrics_count_this_apps_requests_by_route_and_status() {
    // Another app in the same process: its requests must not show in this app's metrics.
    let other = spawn_app().await;
    for _ in 0..3 {
        other.get("/health", None).await;
    }
    let app = spawn_app().await;
    app.get("/health", None).await;
    app.get("/health", None).await;
    app.get("/api/v1/listings/not-a-uuid", None).await;

    let resp = app.get("/metrics", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    let health = r#"{method="GET",route="/health",status="200"}"#;
    assert_eq!(
        series(&text, &format!("http_requests_total{health}")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            &format!("http_request_duration_seconds_count{health}")
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            r#"http_requests_total{method="GET",route="/api/v1/listings/{id}",status="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/health",status="200",le="0.005"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_count_the_provider_calls_of_this_apps_requests() {
    let other = spawn_app().await;
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({"capacity": 5})).await;
    for _ in 0..2 {
        let body = json!({"listing_id": listing["id"], "quantity": 1});
        let resp = app
            .post_json("/api/v1/bookings", &body, Some(&customer.access))
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }

    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert_eq!(
        series(
            &text,
            r#"provider_calls_total{provider="simulated",operation="create",outcome="ok"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            r#"provider_call_duration_seconds_count{provider="simulated",operation="create"}"#
        ),
        Some(2.0),
        "{text}"
    );
    let elsewhere = other.get("/metrics", None).await.text().await.unwrap();
    assert!(!elsewhere.contains("provider_calls_total"), "{elsewhere}");
}

/// Sends `method path` with an empty JSON object as its body where one fits.
async fn probe(app: &TestApp, method: &Method, path: &str) -> reqwest::Response {
    let req = app.client.request(method.clone(), app.url(&concrete(path)));
    let req = if [Method::POST, Method::PUT, Method::PATCH].contains(method) {
        req.json(&json!({}))
    } else {
        req
    };
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_nothing_else() {
    let app = spawn_app().await;
    let resp = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for key in item.as_object().unwrap().keys() {
            let operation = [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ];
            if operation.contains(&key.as_str()) {
                documented.insert((path.clone(), key.to_uppercase()));
            }
        }
    }
    let registered: BTreeSet<(String, String)> = orderly_api::routes::all()
        .iter()
        .flat_map(|e| e.methods.iter().map(|m| (e.path.clone(), m.to_string())))
        .collect();
    assert_eq!(documented, registered, "documented vs registered endpoints");
    assert!(
        documented.contains(&("/api/v1/bookings/{id}/cancel".to_owned(), "POST".to_owned())),
        "{documented:?}"
    );

    let paths: BTreeSet<&String> = documented.iter().map(|(path, _)| path).collect();
    for path in paths {
        for method in &methods {
            let resp = probe(&app, method, path).await;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or_default();
            if documented.contains(&(path.clone(), method.to_string())) {
                // Whatever the handler answers without credentials or fields, it is not
                // the answer to a request that no route took.
                let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
                    || (status == StatusCode::NOT_FOUND && body["detail"] == "no such resource");
                assert!(
                    !unrouted,
                    "{method} {path} is documented but not routed: {status} {body}"
                );
                // Without a token, an operation that needs one says so, and only those do;
                // whatever it answers is one of its documented statuses.
                let secured = doc["paths"][path][method.as_str().to_lowercase()]["security"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty());
                assert_eq!(
                    status == StatusCode::UNAUTHORIZED,
                    secured,
                    "{method} {path} without a token: {status} {body}"
                );
                let statuses = documented_statuses(&doc, path, method);
                assert!(
                    statuses.contains(status.as_str()),
                    "{method} {path} answered {status} but documents only {statuses:?}: {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is not documented, yet answered {status} {body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_docs_page_is_served_without_internet_access() {
    let app = spawn_app().await;
    let resp = app.get("/docs", None).await;
    assert!(resp.status().is_redirection());
    let page = app.get("/docs/", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the page must not load anything from the internet"
    );
    let script = app.get("/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(script.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_route_is_a_problem_404() {
    let app = spawn_app().await;
    assert_problem(
        app.get("/api/v1/nothing-here", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_that_names_the_allowed_methods() {
    let app = spawn_app().await;
    let booking = "/api/v1/bookings/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    for (method, path, allow) in [
        (Method::DELETE, "/api/v1/bookings", "GET, POST"),
        (Method::PUT, "/api/v1/auth/login", "POST"),
        (Method::GET, "/api/v1/auth/login", "POST"),
        (Method::DELETE, "/api/v1/listings/not-a-uuid", "GET, PATCH"),
        (Method::POST, booking, "GET"),
        (Method::POST, "/health", "GET"),
    ] {
        let resp = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
        let body = assert_problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
        assert_eq!(
            body["detail"], "method not allowed",
            "{method} {path}: {body}"
        );
    }
}

#[tokio::test]
async fn the_request_id_is_echoed_or_made() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-abc-123");
    let resp = app.get("/health", None).await;
    let made = resp.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
}

#[tokio::test]
async fn cors_allows_only_the_configured_origin() {
    let app = spawn_app_with(&[("CORS_ALLOWED_ORIGINS", "https://shop.example")]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/listings"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://shop.example").await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn with_metrics_addr_the_metrics_are_served_there_and_not_on_the_api_port() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let test_id = orderly_testing::test_id();
    let vars = std::collections::HashMap::from([
        (
            "DATABASE_URL".to_owned(),
            crate::helpers::create_test_database(&test_id).await,
        ),
        ("REDIS_URL".to_owned(), crate::helpers::env("REDIS_URL")),
        ("REDIS_PREFIX".to_owned(), format!("test:{test_id}")),
        ("API_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("METRICS_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
    ]);
    let settings = orderly_core::Settings::from_map(&vars).unwrap();
    let app = orderly_api::startup::Application::build(settings)
        .await
        .unwrap();
    let api = format!("http://127.0.0.1:{}", app.port());
    let metrics = format!("http://{}/metrics", app.metrics_addr().unwrap());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();

    assert_eq!(
        client
            .get(format!("{api}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let refused = client.get(format!("{api}/metrics")).send().await.unwrap();
    assert_problem(refused, StatusCode::NOT_FOUND, "not_found").await;
    let scrape = client.get(&metrics).send().await.unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    let scrape = scrape.text().await.unwrap();
    assert!(scrape.contains("/health"), "{scrape}");
}
