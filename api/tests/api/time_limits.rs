//! PostgreSQL's time limits on the API's sessions and the request deadline: a statement or a
//! lock wait past its limit is a `503` with `Retry-After`, never a `500`, and the pool serves
//! the next request.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::ResponseError;
use orderly_api::problem::ApiError;
use orderly_core::Settings;
use orderly_core::config::Binary;
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, env, spawn_app_with};

#[tokio::test]
async fn a_statement_past_its_timeout_is_cancelled_as_a_503_and_its_connection_serves_the_next() {
    let vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), env("DATABASE_URL")),
        ("REDIS_URL".into(), env("REDIS_URL")),
        ("DB_STATEMENT_TIMEOUT_MS".into(), "200".into()),
    ]);
    let settings = Settings::from_map(&vars).unwrap();
    // One connection: the statement after the cancelled one runs on the same session.
    let db = orderly_core::db::connect(&settings, Binary::Api, 1)
        .await
        .unwrap();

    let started = Instant::now();
    let error = db
        .execute_unprepared("SELECT pg_sleep(1)")
        .await
        .expect_err("cancelled by statement_timeout");
    assert!(started.elapsed() < Duration::from_millis(900), "{error}");
    assert!(error.to_string().contains("statement timeout"), "{error}");
    let answer = ApiError::from(error);
    assert_eq!(answer.status_code().as_u16(), 503);
    assert!(
        answer
            .error_response()
            .headers()
            .contains_key("retry-after"),
        "Retry-After"
    );

    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT current_setting('statement_timeout') AS s, current_setting('lock_timeout') AS l, \
             current_setting('idle_in_transaction_session_timeout') AS i",
        ))
        .await
        .unwrap()
        .unwrap();
    let setting = |name: &str| row.try_get::<String>("", name).unwrap();
    assert_eq!(setting("s"), "200ms");
    assert_eq!(setting("l"), "2s");
    assert_eq!(setting("i"), "10s");
}

/// A customer, a listing, and a way to book one seat of it.
struct Booking {
    app: TestApp,
    customer: TestUser,
    listing: Value,
}

impl Booking {
    async fn new(overrides: &[(&str, &str)]) -> Self {
        let app = spawn_app_with(overrides).await;
        let provider = app.register("provider").await;
        let customer = app.register("customer").await;
        let listing = app.create_listing(&provider, json!({"capacity": 50})).await;
        Self {
            app,
            customer,
            listing,
        }
    }

    async fn book(&self) -> Response {
        self.app
            .post_json(
                "/api/v1/bookings",
                &json!({"listing_id": self.listing["id"], "quantity": 1}),
                Some(&self.customer.access),
            )
            .await
    }

    /// Holds the listing's row lock in a transaction of the test's own connection.
    async fn lock_listing(&self) -> DatabaseTransaction {
        let txn = self.app.db.begin().await.unwrap();
        let id = self.listing["id"].as_str().unwrap();
        txn.execute_unprepared(&format!(
            "SELECT 1 FROM listings WHERE id = '{id}' FOR UPDATE"
        ))
        .await
        .unwrap();
        txn
    }
}

async fn assert_unavailable_with_retry_after(resp: Response) -> Value {
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"), "Retry-After");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: Value = resp.json().await.unwrap();
    assert_eq!(problem["code"], "unavailable", "{problem}");
    problem
}

#[tokio::test]
async fn a_booking_waiting_on_a_row_lock_past_lock_timeout_is_a_503_and_the_pool_recovers() {
    let b = Booking::new(&[("DB_LOCK_TIMEOUT_MS", "300")]).await;
    assert_eq!(b.book().await.status(), StatusCode::CREATED);

    let lock = b.lock_listing().await;
    let started = Instant::now();
    let problem = assert_unavailable_with_retry_after(b.book().await).await;
    assert!(started.elapsed() < Duration::from_secs(5), "{problem}");
    lock.rollback().await.unwrap();

    for _ in 0..3 {
        assert_eq!(b.book().await.status(), StatusCode::CREATED);
    }
    let listing = b
        .app
        .get_json(
            &format!("/api/v1/listings/{}", b.listing["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(listing["seats_left"], 46, "{listing}");
}

#[tokio::test]
async fn a_request_past_its_deadline_is_a_503_with_retry_after_and_nothing_of_it_is_kept() {
    // No lock timeout: only the request deadline ends the wait.
    let b = Booking::new(&[
        ("REQUEST_TIMEOUT_SECONDS", "1"),
        ("DB_LOCK_TIMEOUT_MS", "0"),
    ])
    .await;

    let lock = b.lock_listing().await;
    let started = Instant::now();
    let problem = assert_unavailable_with_retry_after(b.book().await).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "{waited:?} {problem}"
    );
    lock.rollback().await.unwrap();

    assert_eq!(b.book().await.status(), StatusCode::CREATED);
    let listing = b
        .app
        .get_json(
            &format!("/api/v1/listings/{}", b.listing["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(listing["seats_left"], 49, "{listing}");
}

#[tokio::test]
async fn a_browser_on_an_allowed_origin_can_read_the_deadlines_503_and_its_retry_after() {
    let origin = "https://shop.example";
    let b = Booking::new(&[
        ("REQUEST_TIMEOUT_SECONDS", "1"),
        ("DB_LOCK_TIMEOUT_MS", "0"),
        ("CORS_ALLOWED_ORIGINS", origin),
    ])
    .await;
    let lock = b.lock_listing().await;
    let resp = b
        .app
        .client
        .post(b.app.url("/api/v1/bookings"))
        .bearer_auth(&b.customer.access)
        .header("origin", origin)
        .json(&json!({"listing_id": b.listing["id"], "quantity": 1}))
        .send()
        .await
        .unwrap();
    lock.rollback().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let headers = resp.headers();
    assert_eq!(headers["access-control-allow-origin"], origin);
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("retry-after"), "{exposed}");
    assert!(headers.contains_key("retry-after"));
}
