//! Limits where abuse costs money: the cap on unpaid holds and the request rates.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_problem, spawn_app_with};

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
