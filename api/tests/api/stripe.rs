//! Stripe through the API, against the fake Stripe server: the PaymentIntent made with the
//! booking (or left to the `create_payment` job when Stripe fails), a declined card that
//! keeps nothing, and the webhook: refused unless signed, applied once, in any order.

use orderly_domain::payment_events::{self, Applied};
use orderly_providers::stripe::parse_event;
use orderly_testing::stripe::{FakeStripe, Kind, WebhookSigner};
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, assert_problem, spawn_app, spawn_app_with};

const WHSEC: &str = "whsec_orderly_api_tests";
const WEBHOOK: &str = "/api/v1/webhooks/stripe";

/// The API configured to use `fake` (webhooks signed with [`WHSEC`]).
async fn app_with(fake: &FakeStripe) -> TestApp {
    let env = fake.env(WHSEC);
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(&vars).await
}

async fn book(app: &TestApp, customer: &TestUser, listing: &Value, quantity: i64) -> Response {
    app.post_json(
        "/api/v1/bookings",
        &json!({"listing_id": listing["id"], "quantity": quantity}),
        Some(&customer.access),
    )
    .await
}

/// Books and asserts the 201; returns the booking as answered.
async fn booked(app: &TestApp, customer: &TestUser, listing: &Value, quantity: i64) -> Value {
    let resp = book(app, customer, listing, quantity).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.unwrap()
}

/// A customer who gave a phone number (so a confirmation goes by SMS too).
async fn customer_with_phone(app: &TestApp) -> TestUser {
    let email = format!("customer-{}@example.com", Uuid::new_v4().simple());
    let password = "correct horse battery".to_owned();
    let resp = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": email, "password": password, "name": "Phone Owner",
                    "role": "customer", "phone": "+4915112345678"}),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    TestUser {
        id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
        email,
        password,
        access: body["access"].as_str().unwrap().to_owned(),
        refresh: body["refresh"].as_str().unwrap().to_owned(),
    }
}

async fn seats_left(app: &TestApp, listing: &Value) -> i64 {
    let path = format!("/api/v1/listings/{}", listing["id"].as_str().unwrap());
    app.get_json(&path, None).await["seats_left"]
        .as_i64()
        .unwrap()
}

/// `SELECT count(*) ...` in the test's database.
async fn count_of(app: &TestApp, sql: &str) -> i64 {
    app.db
        .query_one_raw(Statement::from_string(
            app.db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// The booking's outbox rows of `job_type`.
async fn jobs_for(app: &TestApp, booking_id: &str, job_type: &str) -> i64 {
    count_of(
        app,
        &format!(
            "SELECT count(*) FROM outbox WHERE job_type = '{job_type}' AND payload->>'booking_id' = '{booking_id}'"
        ),
    )
    .await
}

/// The booking's notifications of `kind` on `channel`.
async fn notes_for(app: &TestApp, booking_id: &str, channel: &str, kind: &str) -> i64 {
    count_of(
        app,
        &format!(
            "SELECT count(*) FROM notifications WHERE booking_id = '{booking_id}' AND channel = '{channel}' AND kind = '{kind}'"
        ),
    )
    .await
}

/// The booking as its customer sees it.
async fn booking_of(app: &TestApp, customer: &TestUser, id: &str) -> Value {
    let resp = app
        .get(&format!("/api/v1/bookings/{id}"), Some(&customer.access))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// Posts a webhook body with an optional `Stripe-Signature` header.
async fn post_webhook(app: &TestApp, payload: &str, signature: Option<&str>) -> Response {
    let mut req = app
        .client
        .post(app.url(WEBHOOK))
        .header("content-type", "application/json")
        .body(payload.to_owned());
    if let Some(signature) = signature {
        req = req.header("Stripe-Signature", signature);
    }
    req.send().await.unwrap()
}

/// The outbox less the `apply_payment_event` jobs that receiving an event queues: the
/// work an event caused.
const JOBS_BUT_EVENTS: &str = "outbox WHERE job_type <> 'apply_payment_event'";

/// Posts a signed webhook, asserts a 200, and applies the stored event as its
/// `apply_payment_event` job does (no worker runs here). Returns `applied`,
/// `unknown_payment`, or the route's `replayed`.
async fn deliver(app: &TestApp, event: &(String, String)) -> String {
    let resp = post_webhook(app, &event.0, Some(&event.1)).await;
    assert_eq!(resp.status(), StatusCode::OK, "the webhook was refused");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["received"], true, "{body}");
    let outcome = body["outcome"].as_str().unwrap();
    if outcome == "replayed" {
        return outcome.to_owned();
    }
    assert_eq!(outcome, "stored", "{body}");
    let id: Value = serde_json::from_str(&event.0).unwrap();
    let applied = payment_events::apply_stored(&app.db, id["id"].as_str().unwrap(), parse_event)
        .await
        .unwrap();
    match applied {
        Applied::Applied => "applied",
        Applied::Replayed => "replayed",
        Applied::UnknownPayment => "unknown_payment",
    }
    .to_owned()
}

/// A call straight to (fake) Stripe's API, as the dashboard or another process would make.
async fn at_stripe(fake: &FakeStripe, path: &str, form: &[(&str, &str)]) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", fake.base_url()))
        .bearer_auth(fake.secret_key())
        .form(form)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

/// The one PaymentIntent the fake holds for a booking.
fn only_intent(fake: &FakeStripe, booking_id: &str) -> Value {
    let intents = fake.intents_for_booking(booking_id);
    assert_eq!(intents.len(), 1, "PaymentIntents for booking {booking_id}");
    intents.into_iter().next().unwrap()
}

/// An app on the fake, a provider's listing and a customer (with a phone) who booked one
/// seat: `(fake, app, customer, listing, booking id, PaymentIntent id)`.
async fn pending_booking() -> (FakeStripe, TestApp, TestUser, Value, String, String) {
    let fake = FakeStripe::start().await;
    let app = app_with(&fake).await;
    let provider = app.register("provider").await;
    let customer = customer_with_phone(&app).await;
    let listing = app.create_listing(&provider, json!({})).await;
    let booking = booked(&app, &customer, &listing, 1).await;
    assert_eq!(booking["status"], "pending_payment");
    let id = booking["id"].as_str().unwrap().to_owned();
    let pi = only_intent(&fake, &id)["id"].as_str().unwrap().to_owned();
    (fake, app, customer, listing, id, pi)
}

#[tokio::test]
async fn a_booking_creates_one_manual_capture_payment_intent_whose_secret_only_its_customer_sees() {
    let fake = FakeStripe::start().await;
    let app = app_with(&fake).await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let admin = app.admin().await;
    let listing = app
        .create_listing(&provider, json!({"price_cents": 2500, "currency": "eur"}))
        .await;

    let booking = booked(&app, &customer, &listing, 2).await;
    let id = booking["id"].as_str().unwrap();
    assert_eq!(booking["status"], "pending_payment");
    assert_eq!(booking["amount_cents"], 5000);
    assert_eq!(booking["payment"]["provider"], "stripe");
    assert_eq!(booking["payment"]["status"], "requires_payment");

    let pi = only_intent(&fake, id);
    assert_eq!(pi["capture_method"], "manual");
    assert_eq!(pi["amount"], 5000);
    assert_eq!(pi["currency"], "eur");
    assert_eq!(pi["metadata"]["booking_id"], id);
    assert_eq!(pi["status"], "requires_payment_method");
    assert_eq!(fake.executions(Kind::Create), 1);
    let create = fake
        .requests()
        .into_iter()
        .find(|r| r.kind == Kind::Create)
        .unwrap();
    assert_eq!(
        create.idempotency_key.as_deref(),
        Some(format!("orderly-booking-{id}-create").as_str())
    );
    let secret = pi["client_secret"].as_str().unwrap();
    assert_eq!(booking["payment"]["client_secret"], secret);

    let path = format!("/api/v1/bookings/{id}");
    let own = app.get_json(&path, Some(&customer.access)).await;
    assert_eq!(own["payment"]["client_secret"], secret);
    for (who, viewer) in [("the admin", &admin), ("the listing's provider", &provider)] {
        let resp = app.get(&path, Some(&viewer.access)).await;
        assert_eq!(resp.status(), StatusCode::OK, "{who}");
        let seen: Value = resp.json().await.unwrap();
        assert_eq!(seen["payment"]["status"], "requires_payment", "{who}");
        assert!(
            seen["payment"].get("client_secret").is_none(),
            "{who} must not see the client secret: {seen}"
        );
        let page = app.get_json("/api/v1/bookings", Some(&viewer.access)).await;
        assert_eq!(page["count"], 1, "{who}");
        let listed = page.to_string();
        assert!(
            !listed.contains(secret),
            "{who} must not see the client secret in the list: {listed}"
        );
    }
    let mine = app
        .get_json("/api/v1/bookings", Some(&customer.access))
        .await;
    assert!(mine.to_string().contains(secret));
}

#[tokio::test]
async fn a_booking_made_while_stripe_fails_is_kept_with_its_payment_creating_and_a_job_to_create_it()
 {
    let fake = FakeStripe::start().await;
    fake.fail_next(Kind::Create, 1, 500);
    let app = app_with(&fake).await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({"capacity": 5})).await;

    let booking = booked(&app, &customer, &listing, 2).await;
    let id = booking["id"].as_str().unwrap();
    assert_eq!(booking["status"], "pending_payment");
    assert_eq!(booking["payment"]["status"], "creating");
    assert!(booking["payment"].get("client_secret").is_none());
    assert_eq!(fake.calls(Kind::Create), 1);
    assert!(fake.intents_for_booking(id).is_empty());
    assert_eq!(jobs_for(&app, id, "create_payment").await, 1);
    assert_eq!(
        count_of(
            &app,
            &format!(
                "SELECT count(*) FROM payments WHERE booking_id = '{id}' AND provider_attempts = 1"
            )
        )
        .await,
        1,
        "the call of unknown outcome is counted, so the job looks before it creates"
    );
    assert_eq!(seats_left(&app, &listing).await, 3);
}

#[tokio::test]
async fn a_booking_made_while_stripe_is_unreachable_is_kept_with_its_payment_creating() {
    let fake = FakeStripe::start().await;
    let app = app_with(&fake).await;
    fake.stop().await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({})).await;

    let booking = booked(&app, &customer, &listing, 1).await;
    let id = booking["id"].as_str().unwrap();
    assert_eq!(booking["status"], "pending_payment");
    assert_eq!(booking["payment"]["status"], "creating");
    assert!(booking["payment"].get("client_secret").is_none());
    assert_eq!(jobs_for(&app, id, "create_payment").await, 1);
    assert_eq!(jobs_for(&app, id, "expire_booking").await, 1);
}

#[tokio::test]
async fn a_card_declined_at_creation_answers_402_and_keeps_no_booking_seats_or_jobs() {
    let fake = FakeStripe::start().await;
    fake.decline_on_create(1);
    let app = app_with(&fake).await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({"capacity": 4})).await;

    let resp = book(&app, &customer, &listing, 3).await;
    assert_problem(resp, StatusCode::PAYMENT_REQUIRED, "payment_failed").await;
    assert_eq!(fake.calls(Kind::Create), 1);
    assert_eq!(app.count("bookings").await, 0);
    assert_eq!(app.count("payments").await, 0);
    assert_eq!(app.count(JOBS_BUT_EVENTS).await, 0);
    assert_eq!(app.count("notifications").await, 0);
    assert_eq!(seats_left(&app, &listing).await, 4);

    // The next order goes through, with a PaymentIntent of its own.
    let booking = booked(&app, &customer, &listing, 3).await;
    assert_eq!(booking["payment"]["status"], "requires_payment");
    assert_eq!(seats_left(&app, &listing).await, 1);
}

#[tokio::test]
async fn webhooks_without_a_valid_fresh_signature_are_refused_and_change_nothing() {
    let (fake, app, customer, _listing, id, pi) = pending_booking().await;
    let authorized = fake.authorize(&pi);
    let signer = fake.webhooks(WHSEC);
    let (payload, signature) = signer.event(
        "payment_intent.amount_capturable_updated",
        authorized.clone(),
    );

    let (other_payload, other_signature) = WebhookSigner::new("whsec_someone_else").event(
        "payment_intent.amount_capturable_updated",
        authorized.clone(),
    );
    let ten_minutes_ago = chrono::Utc::now().timestamp() - 600;
    let (stale_payload, stale_signature) = signer.event_at(
        "payment_intent.amount_capturable_updated",
        authorized.clone(),
        ten_minutes_ago,
    );
    let tampered = payload.replace("\"livemode\":false", "\"livemode\":true");
    assert_ne!(tampered, payload, "the tampering must change the body");

    let refused: [(&str, &str, Option<&str>); 6] = [
        ("no signature", &payload, None),
        ("another secret", &other_payload, Some(&other_signature)),
        (
            "signed ten minutes ago",
            &stale_payload,
            Some(&stale_signature),
        ),
        ("a tampered body", &tampered, Some(&signature)),
        ("a garbage header", &payload, Some("garbage")),
        (
            "a header without v1",
            &payload,
            Some(&format!("t={}", chrono::Utc::now().timestamp())),
        ),
    ];
    for (what, body, header) in refused {
        let resp = post_webhook(&app, body, header).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
        assert_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    assert_eq!(app.count("processed_webhook_events").await, 0);
    let booking = booking_of(&app, &customer, &id).await;
    assert_eq!(booking["status"], "pending_payment");
    assert_eq!(booking["payment"]["status"], "requires_payment");
    assert_eq!(jobs_for(&app, &id, "capture_payment").await, 0);
    assert_eq!(app.count("notifications").await, 0);

    // The genuine article is accepted.
    assert_eq!(deliver(&app, &(payload, signature)).await, "applied");
    assert_eq!(
        booking_of(&app, &customer, &id).await["status"],
        "confirmed"
    );
}

#[tokio::test]
async fn an_authorization_confirms_the_booking_once_however_often_it_is_delivered() {
    let (fake, app, customer, _listing, id, pi) = pending_booking().await;
    let event = fake.webhooks(WHSEC).event(
        "payment_intent.amount_capturable_updated",
        fake.authorize(&pi),
    );

    assert_eq!(deliver(&app, &event).await, "applied");
    let booking = booking_of(&app, &customer, &id).await;
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["payment"]["status"], "authorized");
    assert_eq!(jobs_for(&app, &id, "capture_payment").await, 1);
    assert_eq!(notes_for(&app, &id, "email", "booking_confirmed").await, 1);
    assert_eq!(notes_for(&app, &id, "sms", "booking_confirmed").await, 1);
    let (outbox, notifications) = (
        app.count(JOBS_BUT_EVENTS).await,
        app.count("notifications").await,
    );
    assert_eq!(app.count("processed_webhook_events").await, 1);

    for _ in 0..2 {
        assert_eq!(deliver(&app, &event).await, "replayed");
    }
    assert_eq!(app.count(JOBS_BUT_EVENTS).await, outbox);
    assert_eq!(app.count("notifications").await, notifications);
    assert_eq!(app.count("processed_webhook_events").await, 1);
    assert_eq!(jobs_for(&app, &id, "capture_payment").await, 1);
    assert_eq!(
        booking_of(&app, &customer, &id).await["status"],
        "confirmed"
    );
    assert_eq!(fake.executions(Kind::Capture), 0, "the API never captures");
}

#[tokio::test]
async fn a_payment_failure_then_the_authorization_confirms_the_booking() {
    let (fake, app, customer, _listing, id, pi) = pending_booking().await;
    let signer = fake.webhooks(WHSEC);
    let failed = signer.event("payment_intent.payment_failed", fake.decline(&pi));
    let authorized = signer.event(
        "payment_intent.amount_capturable_updated",
        fake.authorize(&pi),
    );

    assert_eq!(deliver(&app, &failed).await, "applied");
    assert_eq!(
        booking_of(&app, &customer, &id).await["status"],
        "pending_payment"
    );
    assert_eq!(deliver(&app, &authorized).await, "applied");
    let booking = booking_of(&app, &customer, &id).await;
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["payment"]["status"], "authorized");
    assert_eq!(jobs_for(&app, &id, "capture_payment").await, 1);
    assert_eq!(notes_for(&app, &id, "email", "payment_failed").await, 1);
    assert_eq!(notes_for(&app, &id, "email", "booking_confirmed").await, 1);
}

#[tokio::test]
async fn a_payment_failure_delivered_after_the_authorization_leaves_the_booking_confirmed_and_sends_nothing()
 {
    let (fake, app, customer, _listing, id, pi) = pending_booking().await;
    let signer = fake.webhooks(WHSEC);
    // The customer's first card was declined, the second authorised; Stripe delivers the
    // events the other way round.
    let failed = signer.event("payment_intent.payment_failed", fake.decline(&pi));
    let authorized = signer.event(
        "payment_intent.amount_capturable_updated",
        fake.authorize(&pi),
    );

    assert_eq!(deliver(&app, &authorized).await, "applied");
    let notifications = app.count("notifications").await;
    let outbox = app.count(JOBS_BUT_EVENTS).await;
    assert_eq!(deliver(&app, &failed).await, "applied");

    let booking = booking_of(&app, &customer, &id).await;
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["payment"]["status"], "authorized");
    assert_eq!(notes_for(&app, &id, "email", "payment_failed").await, 0);
    assert_eq!(app.count("notifications").await, notifications);
    assert_eq!(app.count(JOBS_BUT_EVENTS).await, outbox);
    assert_eq!(app.count("processed_webhook_events").await, 2);
}

#[tokio::test]
async fn failed_payments_on_a_pending_booking_send_one_email_however_many_fail() {
    let (fake, app, customer, _listing, id, pi) = pending_booking().await;
    let signer = fake.webhooks(WHSEC);
    let first = signer.event("payment_intent.payment_failed", fake.decline(&pi));
    let second = signer.event("payment_intent.payment_failed", fake.decline(&pi));
    assert_ne!(first.0, second.0, "two distinct events");

    assert_eq!(deliver(&app, &first).await, "applied");
    assert_eq!(notes_for(&app, &id, "email", "payment_failed").await, 1);
    assert_eq!(
        jobs_for_notification_kind(&app, &id, "payment_failed").await,
        1
    );
    assert_eq!(deliver(&app, &second).await, "applied");
    assert_eq!(deliver(&app, &second).await, "replayed");

    assert_eq!(notes_for(&app, &id, "email", "payment_failed").await, 1);
    assert_eq!(notes_for(&app, &id, "sms", "payment_failed").await, 0);
    assert_eq!(
        jobs_for_notification_kind(&app, &id, "payment_failed").await,
        1
    );
    assert_eq!(app.count("processed_webhook_events").await, 2);
    let booking = booking_of(&app, &customer, &id).await;
    assert_eq!(booking["status"], "pending_payment");
    assert_eq!(booking["payment"]["status"], "requires_payment");
    assert!(booking["payment"]["client_secret"].is_string());
}

/// `send_email` jobs for the booking's notifications of `kind`.
async fn jobs_for_notification_kind(app: &TestApp, booking_id: &str, kind: &str) -> i64 {
    count_of(
        app,
        &format!(
            "SELECT count(*) FROM outbox o JOIN notifications n ON o.payload->>'notification_id' = n.id::text
              WHERE n.booking_id = '{booking_id}' AND n.kind = '{kind}' AND o.job_type = 'send_email'"
        ),
    )
    .await
}

#[tokio::test]
async fn an_event_about_a_payment_intent_of_no_booking_of_ours_is_acknowledged_and_changes_nothing()
{
    let (fake, app, customer, _listing, id, _pi) = pending_booking().await;
    // Made at the same Stripe account by something else: not ours.
    let stranger_booking = Uuid::new_v4().to_string();
    let foreign = at_stripe(
        &fake,
        "v1/payment_intents",
        &[
            ("amount", "990"),
            ("currency", "eur"),
            ("capture_method", "manual"),
            ("metadata[booking_id]", stranger_booking.as_str()),
        ],
    )
    .await;
    let foreign_id = foreign["id"].as_str().unwrap();
    let event = fake.webhooks(WHSEC).event(
        "payment_intent.amount_capturable_updated",
        fake.authorize(foreign_id),
    );
    let outbox = app.count(JOBS_BUT_EVENTS).await;

    assert_eq!(deliver(&app, &event).await, "unknown_payment");
    assert_eq!(app.count("processed_webhook_events").await, 1);
    assert_eq!(app.count(JOBS_BUT_EVENTS).await, outbox);
    assert_eq!(app.count("notifications").await, 0);
    assert_eq!(
        booking_of(&app, &customer, &id).await["status"],
        "pending_payment"
    );
    assert_eq!(deliver(&app, &event).await, "replayed");
}

#[tokio::test]
async fn without_stripe_configured_the_webhook_endpoint_does_not_exist() {
    let app = spawn_app().await;
    let (payload, signature) = WebhookSigner::new(WHSEC).event(
        "payment_intent.amount_capturable_updated",
        json!({"id": "pi_x", "object": "payment_intent"}),
    );
    let resp = post_webhook(&app, &payload, Some(&signature)).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.count("processed_webhook_events").await, 0);
}

#[tokio::test]
async fn an_authorization_for_a_payment_intent_whose_creation_answer_was_lost_is_adopted_and_confirms_the_booking()
 {
    let fake = FakeStripe::start().await;
    fake.lose_answer_after_processing(Kind::Create, 1);
    let app = app_with(&fake).await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({})).await;
    let booking = booked(&app, &customer, &listing, 1).await;
    let id = booking["id"].as_str().unwrap().to_owned();
    assert_eq!(booking["payment"]["status"], "creating");
    let pi = only_intent(&fake, &id);
    let pi_id = pi["id"].as_str().unwrap();

    let event = fake.webhooks(WHSEC).event(
        "payment_intent.amount_capturable_updated",
        fake.authorize(pi_id),
    );
    assert_eq!(deliver(&app, &event).await, "applied");

    let booking = booking_of(&app, &customer, &id).await;
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["payment"]["status"], "authorized");
    assert_eq!(booking["payment"]["client_secret"], pi["client_secret"]);
    assert_eq!(
        count_of(
            &app,
            &format!(
                "SELECT count(*) FROM payments WHERE booking_id = '{id}' AND provider_payment_id = '{pi_id}'"
            )
        )
        .await,
        1
    );
    assert_eq!(jobs_for(&app, &id, "capture_payment").await, 1);
    assert_eq!(fake.executions(Kind::Create), 1);
}

#[tokio::test]
async fn a_succeeded_event_for_a_capture_whose_answer_never_came_marks_the_booking_paid_once() {
    let (fake, app, customer, _listing, id, pi) = pending_booking().await;
    let signer = fake.webhooks(WHSEC);
    let authorized = signer.event(
        "payment_intent.amount_capturable_updated",
        fake.authorize(&pi),
    );
    assert_eq!(deliver(&app, &authorized).await, "applied");
    at_stripe(&fake, &format!("v1/payment_intents/{pi}/capture"), &[]).await;
    let succeeded = signer.event(
        "payment_intent.succeeded",
        fake.payment_intent(&pi).unwrap(),
    );

    assert_eq!(deliver(&app, &succeeded).await, "applied");
    let booking = booking_of(&app, &customer, &id).await;
    assert_eq!(booking["status"], "paid");
    assert_eq!(booking["payment"]["status"], "captured");
    assert_eq!(notes_for(&app, &id, "email", "payment_receipt").await, 1);
    let (outbox, notifications) = (
        app.count(JOBS_BUT_EVENTS).await,
        app.count("notifications").await,
    );
    assert_eq!(deliver(&app, &succeeded).await, "replayed");
    assert_eq!(app.count(JOBS_BUT_EVENTS).await, outbox);
    assert_eq!(app.count("notifications").await, notifications);
}

#[tokio::test]
async fn a_full_refund_reported_by_stripe_marks_a_cancelled_booking_refunded() {
    let (fake, app, customer, _listing, id, pi) = pending_booking().await;
    let signer = fake.webhooks(WHSEC);
    let authorized = signer.event(
        "payment_intent.amount_capturable_updated",
        fake.authorize(&pi),
    );
    assert_eq!(deliver(&app, &authorized).await, "applied");
    at_stripe(&fake, &format!("v1/payment_intents/{pi}/capture"), &[]).await;
    let succeeded = signer.event(
        "payment_intent.succeeded",
        fake.payment_intent(&pi).unwrap(),
    );
    assert_eq!(deliver(&app, &succeeded).await, "applied");
    let resp = app
        .post_json(
            &format!("/api/v1/bookings/{id}/cancel"),
            &json!({}),
            Some(&customer.access),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(jobs_for(&app, &id, "refund_payment").await, 1);

    at_stripe(&fake, "v1/refunds", &[("payment_intent", pi.as_str())]).await;
    let refunded = signer.event("charge.refunded", fake.charge_of(&pi).unwrap());
    assert_eq!(deliver(&app, &refunded).await, "applied");

    let booking = booking_of(&app, &customer, &id).await;
    assert_eq!(booking["status"], "refunded");
    assert_eq!(booking["payment"]["status"], "refunded");
    assert_eq!(notes_for(&app, &id, "email", "booking_refunded").await, 1);
}

#[tokio::test]
async fn a_payment_intent_cancelled_at_stripe_before_capture_expires_the_confirmed_booking_and_returns_its_seats()
 {
    let (fake, app, customer, listing, id, pi) = pending_booking().await;
    let signer = fake.webhooks(WHSEC);
    let authorized = signer.event(
        "payment_intent.amount_capturable_updated",
        fake.authorize(&pi),
    );
    assert_eq!(deliver(&app, &authorized).await, "applied");
    assert_eq!(seats_left(&app, &listing).await, 9);
    let cancelled = at_stripe(&fake, &format!("v1/payment_intents/{pi}/cancel"), &[]).await;
    assert_eq!(cancelled["status"], "canceled");

    let event = signer.event("payment_intent.canceled", cancelled);
    assert_eq!(deliver(&app, &event).await, "applied");
    let booking = booking_of(&app, &customer, &id).await;
    assert_eq!(booking["status"], "expired");
    assert_eq!(booking["payment"]["status"], "failed");
    assert_eq!(seats_left(&app, &listing).await, 10);
    assert_eq!(notes_for(&app, &id, "email", "payment_failed").await, 1);
    assert_eq!(deliver(&app, &event).await, "replayed");
    assert_eq!(seats_left(&app, &listing).await, 10);
}

#[tokio::test]
async fn a_correctly_signed_event_this_version_cannot_read_is_stored_and_answered_200() {
    let (fake, app, customer, _listing, id, pi) = pending_booking().await;
    let signer = fake.webhooks(WHSEC);
    // A newer API version: a field this version reads as a number became an object.
    let mut newer = fake.authorize(&pi);
    newer["amount_received"] = json!({"value": 0, "currency": "eur"});
    let event = signer.event("payment_intent.amount_capturable_updated", newer);
    let not_json = "an event from the future";
    let now = chrono::Utc::now().timestamp();
    let garbage = (not_json.to_owned(), signer.sign(not_json, now));

    for event in [&event, &garbage] {
        let resp = post_webhook(&app, &event.0, Some(&event.1)).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "a signed event is never refused"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["outcome"], "stored", "{body}");
        let again = post_webhook(&app, &event.0, Some(&event.1)).await;
        let body: Value = again.json().await.unwrap();
        assert_eq!(body["outcome"], "replayed", "{body}");
    }
    assert_eq!(app.count("processed_webhook_events").await, 2);
    assert_eq!(
        app.count("outbox WHERE job_type = 'apply_payment_event'")
            .await,
        2,
        "each is applied (or dies visibly) in a job of its own"
    );
    let id_of_garbage = app
        .count("processed_webhook_events WHERE event_id LIKE 'unreadable-%'")
        .await;
    assert_eq!(id_of_garbage, 1);
    assert_eq!(
        booking_of(&app, &customer, &id).await["status"],
        "pending_payment",
        "nothing is applied on receipt"
    );
}
