//! Bookings through the API: seats under concurrency, idempotent replays, who sees what,
//! cancellation, and the jobs each step leaves in the outbox.

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_problem, fields, spawn_app, spawn_app_with};

async fn book(
    app: &TestApp,
    customer: &TestUser,
    listing: &Value,
    quantity: i64,
) -> reqwest::Response {
    app.post_json(
        "/api/v1/bookings",
        &json!({"listing_id": listing["id"], "quantity": quantity}),
        Some(&customer.access),
    )
    .await
}

async fn seats_left(app: &TestApp, listing: &Value) -> i64 {
    let fresh = app
        .get_json(
            &format!("/api/v1/listings/{}", listing["id"].as_str().unwrap()),
            None,
        )
        .await;
    fresh["seats_left"].as_i64().unwrap()
}

/// Outbox jobs of a type, as `(task_id, status)`.
async fn jobs_of(app: &TestApp, job_type: &str) -> Vec<(String, String)> {
    app.db
        .query_all_raw(Statement::from_sql_and_values(
            app.db.get_database_backend(),
            "SELECT task_id, status FROM outbox WHERE job_type = $1 ORDER BY created_at",
            [job_type.into()],
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.try_get("", "task_id").unwrap(),
                r.try_get("", "status").unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_booking_takes_seats_and_records_its_follow_up_jobs() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app
        .create_listing(&provider, json!({"capacity": 5, "price_cents": 1250}))
        .await;

    let resp = book(&app, &customer, &listing, 2).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let booking: Value = resp.json().await.unwrap();
    assert_eq!(booking["amount_cents"], 2500);
    assert_eq!(booking["currency"], "eur");
    assert_eq!(booking["customer_id"], customer.id.to_string());
    // The simulated provider authorises at once: the booking is confirmed in the same request.
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["payment"]["provider"], "simulated");
    assert_eq!(booking["payment"]["status"], "authorized");
    assert!(
        booking["payment"]["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("sim_pi_")
    );
    assert_eq!(seats_left(&app, &listing).await, 3);

    let id = booking["id"].as_str().unwrap();
    assert_eq!(
        jobs_of(&app, "capture_payment").await,
        [(format!("capture_payment:{id}"), "pending".into())]
    );
    assert!(
        jobs_of(&app, "expire_booking").await.is_empty(),
        "a booking confirmed at once never expires: no expiry job"
    );
    assert_eq!(
        jobs_of(&app, "send_email").await.len(),
        1,
        "one confirmation e-mail"
    );
    assert_eq!(jobs_of(&app, "send_sms").await.len(), 0, "no phone, no SMS");
    assert_eq!(booking["notifications"][0]["kind"], "booking_confirmed");
    assert_eq!(booking["notifications"][0]["status"], "pending");
}

#[tokio::test]
async fn with_simulated_payments_never_the_booking_waits_for_payment() {
    let app = spawn_app_with(&[
        ("SIMULATED_PAYMENTS", "never"),
        ("BOOKING_HOLD_SECONDS", "60"),
    ])
    .await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({})).await;
    let booking: Value = book(&app, &customer, &listing, 1)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(booking["status"], "pending_payment");
    assert_eq!(booking["payment"]["status"], "requires_payment");
    let created =
        chrono::DateTime::parse_from_rfc3339(booking["created_at"].as_str().unwrap()).unwrap();
    let hold =
        chrono::DateTime::parse_from_rfc3339(booking["hold_expires_at"].as_str().unwrap()).unwrap();
    assert!((hold - created).num_seconds() >= 59 && (hold - created).num_seconds() <= 61);
    assert!(jobs_of(&app, "capture_payment").await.is_empty());
    let id = booking["id"].as_str().unwrap();
    assert_eq!(
        jobs_of(&app, "expire_booking").await,
        [(format!("expire_booking:{id}"), "pending".into())],
        "an unpaid booking expires at the end of its hold"
    );
}

#[tokio::test]
async fn two_customers_racing_for_the_last_seat_get_one_booking() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let listing = app.create_listing(&provider, json!({"capacity": 1})).await;
    let (a, b) = (
        app.register("customer").await,
        app.register("customer").await,
    );
    let (ra, rb) = tokio::join!(book(&app, &a, &listing, 1), book(&app, &b, &listing, 1));
    let mut statuses = [ra.status(), rb.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    let loser = if ra.status() == StatusCode::CONFLICT {
        ra
    } else {
        rb
    };
    assert_problem(loser, StatusCode::CONFLICT, "sold_out").await;
    assert_eq!(seats_left(&app, &listing).await, 0);
    assert_eq!(app.count("bookings").await, 1);
}

#[tokio::test]
async fn fifty_concurrent_bookings_on_ten_seats_make_exactly_ten() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let listing = app.create_listing(&provider, json!({"capacity": 10})).await;
    let mut customers = Vec::new();
    for _ in 0..5 {
        customers.push(app.register("customer").await);
    }
    let attempts = (0..50).map(|i| book(&app, &customers[i % 5], &listing, 1));
    let responses = futures::future::join_all(attempts).await;
    let created = responses
        .iter()
        .filter(|r| r.status() == StatusCode::CREATED)
        .count();
    let sold_out = responses
        .iter()
        .filter(|r| r.status() == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, sold_out), (10, 40));
    assert_eq!(seats_left(&app, &listing).await, 0);
    assert_eq!(app.count("bookings").await, 10);
    assert_eq!(
        jobs_of(&app, "capture_payment").await.len(),
        10,
        "no job for a refused booking"
    );
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_first_answer() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({})).await;
    let post = |body: Value| {
        let (app, token) = (&app, customer.access.as_str());
        async move {
            app.post_json_with_key("/api/v1/bookings", &body, Some(token), "order-1")
                .await
        }
    };
    let body = json!({"listing_id": listing["id"], "quantity": 2});
    let first = post(body.clone()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let again = post(json!({"quantity": 2, "listing_id": listing["id"]})).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    let other = post(json!({"listing_id": listing["id"], "quantity": 3})).await;
    let problem = assert_problem(
        other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(fields(&problem), ["Idempotency-Key"]);

    assert_eq!(app.count("bookings").await, 1);
    assert_eq!(seats_left(&app, &listing).await, 8);
}

#[tokio::test]
async fn an_idempotency_key_is_per_user() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let listing = app.create_listing(&provider, json!({})).await;
    for _ in 0..2 {
        let customer = app.register("customer").await;
        let resp = app
            .post_json_with_key(
                "/api/v1/bookings",
                &json!({"listing_id": listing["id"], "quantity": 1}),
                Some(&customer.access),
                "same-key",
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert!(resp.headers().get("idempotent-replayed").is_none());
    }
    assert_eq!(app.count("bookings").await, 2);
}

#[tokio::test]
async fn bad_booking_requests_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({"capacity": 30})).await;
    for (body, field) in [
        (
            json!({"listing_id": listing["id"], "quantity": 0}),
            "quantity",
        ),
        (
            json!({"listing_id": listing["id"], "quantity": 21}),
            "quantity",
        ),
        (
            json!({"listing_id": listing["id"], "quantity": "1"}),
            "quantity",
        ),
        (json!({"listing_id": "nope", "quantity": 1}), "listing_id"),
        (json!({"quantity": 1}), "listing_id"),
        (
            json!({"listing_id": listing["id"], "quantity": 1, "price_cents": 1}),
            "price_cents",
        ),
    ] {
        let problem = assert_problem(
            app.post_json("/api/v1/bookings", &body, Some(&customer.access))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(fields(&problem), [field], "{body}");
    }
    let unknown = json!({"listing_id": uuid::Uuid::new_v4(), "quantity": 1});
    assert_problem(
        app.post_json("/api/v1/bookings", &unknown, Some(&customer.access))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let as_provider = json!({"listing_id": listing["id"], "quantity": 1});
    assert_problem(
        app.post_json("/api/v1/bookings", &as_provider, Some(&provider.access))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let too_long = "k".repeat(256);
    let resp = app
        .post_json_with_key(
            "/api/v1/bookings",
            &as_provider,
            Some(&customer.access),
            &too_long,
        )
        .await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(app.count("bookings").await, 0);
    assert_eq!(app.count("outbox").await, 0);
    assert_eq!(seats_left(&app, &listing).await, 30);
}

#[tokio::test]
async fn bookings_are_visible_to_their_customer_the_listing_provider_and_admins_only() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let other_provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let stranger = app.register("customer").await;
    let admin = app.admin().await;
    let listing = app.create_listing(&provider, json!({})).await;
    let booking: Value = book(&app, &customer, &listing, 1)
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/bookings/{}", booking["id"].as_str().unwrap());

    let own = app.get_json(&path, Some(&customer.access)).await;
    assert!(own["payment"]["client_secret"].is_string());
    let seen_by_provider = app.get(&path, Some(&provider.access)).await;
    assert_eq!(seen_by_provider.status(), StatusCode::OK);
    let seen_by_provider: Value = seen_by_provider.json().await.unwrap();
    assert!(
        seen_by_provider["payment"].get("client_secret").is_none(),
        "the secret is the customer's only"
    );
    assert_eq!(
        app.get(&path, Some(&admin.access)).await.status(),
        StatusCode::OK
    );
    for outsider in [&stranger, &other_provider] {
        assert_problem(
            app.get(&path, Some(&outsider.access)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }

    let count = |user: &TestUser| {
        let token = user.access.clone();
        let app = &app;
        async move {
            let page = app.get_json("/api/v1/bookings", Some(&token)).await;
            page["count"].as_i64().unwrap()
        }
    };
    assert_eq!(count(&customer).await, 1);
    assert_eq!(count(&stranger).await, 0);
    assert_eq!(count(&provider).await, 1);
    assert_eq!(count(&other_provider).await, 0);
    assert_eq!(count(&admin).await, 1);

    let filtered = app
        .get_json("/api/v1/bookings?status=expired", Some(&customer.access))
        .await;
    assert_eq!(filtered["count"], 0);
    assert_problem(
        app.get("/api/v1/bookings?status=lost", Some(&customer.access))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn cancelling_returns_the_seats_once_and_queues_the_payment_cancellation() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let stranger = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({"capacity": 4})).await;
    let booking: Value = book(&app, &customer, &listing, 3)
        .await
        .json()
        .await
        .unwrap();
    let path = format!(
        "/api/v1/bookings/{}/cancel",
        booking["id"].as_str().unwrap()
    );
    assert_eq!(seats_left(&app, &listing).await, 1);

    assert_problem(
        app.post_json(&path, &json!({}), Some(&stranger.access))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(
        app.post_json(&path, &json!({}), Some(&provider.access))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    let resp = app
        .post_json(&path, &json!({}), Some(&customer.access))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cancelled: Value = resp.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(seats_left(&app, &listing).await, 4);
    assert_eq!(jobs_of(&app, "cancel_payment").await.len(), 1);

    let again = app
        .post_json(&path, &json!({}), Some(&customer.access))
        .await;
    assert_problem(again, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(seats_left(&app, &listing).await, 4, "seats come back once");
}

#[tokio::test]
async fn a_key_whose_answer_was_lost_still_returns_the_booking_it_made() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({})).await;
    let post = |quantity: i64| {
        let body = json!({"listing_id": listing["id"], "quantity": quantity});
        let (app, token) = (&app, customer.access.as_str());
        async move {
            app.post_json_with_key("/api/v1/bookings", &body, Some(token), "lost-answer")
                .await
        }
    };
    let first: Value = post(2).await.json().await.unwrap();
    // The request died after its commit: the stored answer is gone, the booking is not.
    app.db
        .execute_unprepared("DELETE FROM idempotency_keys")
        .await
        .unwrap();

    let again = post(2).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    app.db
        .execute_unprepared("DELETE FROM idempotency_keys")
        .await
        .unwrap();
    let different = post(3).await;
    assert_problem(
        different,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(app.count("bookings").await, 1);
}

#[tokio::test]
async fn a_customer_cannot_cancel_a_paid_booking_within_the_cutoff_but_an_admin_can() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let admin = app.admin().await;
    let soon = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let listing = app
        .create_listing(&provider, json!({"capacity": 4, "starts_at": soon}))
        .await;
    // The simulated provider authorises at once: the payment went through.
    let booking: Value = book(&app, &customer, &listing, 1)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(booking["status"], "confirmed");
    let path = format!(
        "/api/v1/bookings/{}/cancel",
        booking["id"].as_str().unwrap()
    );

    let refused = app
        .post_json(&path, &json!({}), Some(&customer.access))
        .await;
    assert_problem(refused, StatusCode::CONFLICT, "cancellation_closed").await;
    assert_eq!(seats_left(&app, &listing).await, 3, "nothing changed");
    assert!(jobs_of(&app, "cancel_payment").await.is_empty());

    let resp = app.post_json(&path, &json!({}), Some(&admin.access)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(seats_left(&app, &listing).await, 4);
}

#[tokio::test]
async fn an_unpaid_booking_can_be_cancelled_however_close_its_start() {
    let app = spawn_app_with(&[("SIMULATED_PAYMENTS", "never")]).await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let listing = app
        .create_listing(&provider, json!({"capacity": 4, "starts_at": soon}))
        .await;
    let booking: Value = book(&app, &customer, &listing, 1)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(booking["status"], "pending_payment");
    let path = format!(
        "/api/v1/bookings/{}/cancel",
        booking["id"].as_str().unwrap()
    );
    let resp = app
        .post_json(&path, &json!({}), Some(&customer.access))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}
