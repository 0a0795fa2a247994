//! Limits where abuse costs money: the cap on unpaid holds and the request rates.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{RedisServer, TestApp, TestUser, assert_problem, spawn_app_with};

async fn book(app: &TestApp, customer: &TestUser, listing: &Value) -> reqwest::Response {
    app.post_json(
        "/api/v1/bookings",
        &json!({"listing_id": listing["id"], "quantity": 1}),
        Some(&customer.access),
    )
    .await
}

async fn seats_left(app: &TestApp, listing: &Value) -> i64 {
    let id = listing["id"].as_str().unwrap();
    app.get_json(&format!("/api/v1/listings/{id}"), None).await["seats_left"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_customer_holding_the_maximum_of_unpaid_bookings_gets_too_many_holds_and_nothing_changes()
{
    let app = spawn_app_with(&[
        ("SIMULATED_PAYMENTS", "never"),
        ("MAX_OPEN_HOLDS_PER_CUSTOMER", "2"),
    ])
    .await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({})).await;
    let mut first = None;
    for _ in 0..2 {
        let resp = book(&app, &customer, &listing).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        first.get_or_insert(resp.json::<Value>().await.unwrap());
    }
    let refused = book(&app, &customer, &listing).await;
    assert_problem(refused, StatusCode::CONFLICT, "too_many_holds").await;
    assert_eq!(app.count("bookings").await, 2);
    assert_eq!(seats_left(&app, &listing).await, 8);

    let other = app.register("customer").await;
    assert_eq!(
        book(&app, &other, &listing).await.status(),
        StatusCode::CREATED
    );

    let id = first.unwrap()["id"].as_str().unwrap().to_owned();
    let cancelled = app
        .post_json(
            &format!("/api/v1/bookings/{id}/cancel"),
            &json!({}),
            Some(&customer.access),
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    assert_eq!(
        book(&app, &customer, &listing).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn racing_bookings_never_exceed_the_hold_cap() {
    let app = spawn_app_with(&[
        ("SIMULATED_PAYMENTS", "never"),
        ("MAX_OPEN_HOLDS_PER_CUSTOMER", "3"),
    ])
    .await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({})).await;
    let answers = futures::future::join_all((0..8).map(|_| book(&app, &customer, &listing))).await;
    let created = answers
        .iter()
        .filter(|r| r.status() == StatusCode::CREATED)
        .count();
    let refused = answers
        .iter()
        .filter(|r| r.status() == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (3, 5));
    assert_eq!(app.count("bookings").await, 3);
}

#[tokio::test]
async fn paid_bookings_are_not_holds() {
    // Simulated payments authorise at once: the bookings are confirmed, none is a hold.
    let app = spawn_app_with(&[("MAX_OPEN_HOLDS_PER_CUSTOMER", "1")]).await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({})).await;
    for _ in 0..3 {
        assert_eq!(
            book(&app, &customer, &listing).await.status(),
            StatusCode::CREATED
        );
    }
}

/// The `RateLimit-Policy` and `RateLimit` headers of an answer.
fn rate_headers(resp: &reqwest::Response) -> (String, String) {
    let header = |name| resp.headers()[name].to_str().unwrap().to_owned();
    (header("ratelimit-policy"), header("ratelimit"))
}

#[tokio::test]
async fn bookings_past_the_per_minute_limit_are_429_with_retry_after_and_ratelimit_headers() {
    let app = spawn_app_with(&[("RATE_LIMIT_BOOKINGS_PER_MINUTE", "3")]).await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({})).await;
    for remaining in [2, 1, 0] {
        let resp = book(&app, &customer, &listing).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let (policy, limit) = rate_headers(&resp);
        assert_eq!(policy, r#""bookings";q=3;w=60"#);
        assert!(
            limit.starts_with(&format!(r#""bookings";r={remaining};t="#)),
            "{limit}"
        );
    }
    let refused = book(&app, &customer, &listing).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (policy, limit) = rate_headers(&refused);
    assert_eq!(policy, r#""bookings";q=3;w=60"#);
    assert!(limit.starts_with(r#""bookings";r=0;t="#), "{limit}");
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(app.count("bookings").await, 3);

    let other = app.register("customer").await;
    assert_eq!(
        book(&app, &other, &listing).await.status(),
        StatusCode::CREATED,
        "the limit is per user"
    );
}

#[tokio::test]
async fn registrations_past_the_hourly_limit_per_client_are_429_and_other_clients_register() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_REGISTRATIONS_PER_HOUR", "2"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let register = |n: u32, client: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/register"))
            .header("x-forwarded-for", client)
            .json(&json!({
                "email": format!("user{n}@example.com"),
                "password": "correct horse battery",
                "name": "Ada",
            }))
            .send()
    };
    for n in 0..2 {
        let resp = register(n, "203.0.113.5").await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(rate_headers(&resp).0, r#""registrations";q=2;w=3600"#);
    }
    let refused = register(2, "203.0.113.5").await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    let (_, limit) = rate_headers(&refused);
    assert!(limit.starts_with(r#""registrations";r=0;t="#), "{limit}");
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(app.count("users").await, 2);
    let other = register(3, "203.0.113.6").await.unwrap();
    assert_eq!(other.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn with_redis_unreachable_the_limits_count_in_the_process_instead_of_failing() {
    let mut redis = RedisServer::start().await;
    let app = spawn_app_with(&[
        ("REDIS_URL", redis.url.clone().as_str()),
        ("RATE_LIMIT_REGISTRATIONS_PER_HOUR", "1"),
    ])
    .await;
    redis.stop();
    let body = |n: u32| json!({"email": format!("u{n}@example.com"), "password": "correct horse battery", "name": "Ada"});
    let first = app.post_json("/api/v1/auth/register", &body(0), None).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = app.post_json("/api/v1/auth/register", &body(1), None).await;
    assert_problem(second, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}
