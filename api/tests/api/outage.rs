//! A dependency that is down is a `503` with `Retry-After`, never a `500`, and service
//! resumes by itself when it returns.

use std::time::Duration;

use orderly_testing::{PgServer, wait_until};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn a_stopped_database_is_a_503_with_retry_after_and_service_resumes_without_restart() {
    let pg = PgServer::start().await;
    let app = spawn_app_with(&[("DATABASE_URL", pg.url.as_str())]).await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({"capacity": 50})).await;
    let book = || async {
        app.post_json(
            "/api/v1/bookings",
            &json!({"listing_id": listing["id"], "quantity": 1}),
            Some(&customer.access),
        )
        .await
    };
    for _ in 0..3 {
        assert_eq!(book().await.status(), StatusCode::CREATED);
    }

    pg.stop();
    let resp = book().await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().get("retry-after").is_some(), "Retry-After");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(problem["code"], "unavailable");
    assert!(
        !problem.to_string().to_lowercase().contains("sqlx"),
        "{problem}"
    );
    let ready = app.get("/ready", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.headers().get("retry-after").is_some());
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_ne!(ready["checks"]["postgres"], "ok", "{ready}");
    assert_eq!(ready["checks"]["redis"], "ok", "{ready}");
    // Reads and logins need the database too.
    let me = app.get("/api/v1/me", Some(&customer.access)).await;
    assert_eq!(me.status(), StatusCode::SERVICE_UNAVAILABLE);

    pg.start_again().await;
    wait_until(
        "bookings are taken again",
        Duration::from_secs(15),
        || async { book().await.status() == StatusCode::CREATED },
    )
    .await;
    assert_eq!(app.get("/ready", None).await.status(), StatusCode::OK);

    // Nothing half-written: each booking has its jobs, and the seats add up.
    let db = sea_orm::Database::connect(&pg.url).await.unwrap();
    let scalar = |sql: &'static str| {
        let db = db.clone();
        async move {
            use sea_orm::ConnectionTrait;
            db.query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                sql,
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap()
        }
    };
    let bookings = scalar("SELECT count(*) FROM bookings").await;
    assert!(bookings >= 4, "{bookings}");
    assert_eq!(
        scalar("SELECT count(*) FROM bookings b WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.task_id = 'capture_payment:' || b.id)").await,
        0
    );
    assert_eq!(
        scalar("SELECT (l.capacity - l.seats_left - (SELECT coalesce(sum(quantity), 0) FROM bookings WHERE listing_id = l.id AND status IN ('pending_payment', 'confirmed', 'paid')))::bigint FROM listings l").await,
        0
    );
}
