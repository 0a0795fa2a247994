//! PostgreSQL backends terminated under load: every booking request ends in a `201` or a
//! `503` with `Retry-After`, and a `503` leaves its `Idempotency-Key` free, so the client
//! that retries with it is served at once and books exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use sea_orm::sqlx::{self, Connection, PgConnection};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, spawn_app_with};

const CLIENTS: usize = 200;
const AT_ONCE: usize = 8;
/// Sweeps of terminations (one every 100 to 300 ms: about 8 s), unless the clients are
/// done first. A sweep leaves every idle connection of the API's pool dead, and the pool
/// hands each out once more before it notices: a client alone at the end of the run would
/// meet only dead connections while the sweeps go on, so they end.
const SWEEPS: usize = 40;
/// Tries per client, the first included: enough to outlast the sweeps.
const ATTEMPTS: usize = 60;
const RETRY_PAUSE: Duration = Duration::from_millis(300);
/// The whole run's bound.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// What one client saw.
#[derive(Debug, Default)]
struct Client {
    key: String,
    booking_id: Option<String>,
    unavailable: usize,
    replayed: bool,
    /// Answered with a booking that an earlier try (answered `503`) had made.
    from_earlier_try: bool,
    /// Any answer other than `201` or `503` (with `Retry-After`).
    unexpected: Vec<(StatusCode, String)>,
}

/// Posts one booking with its own key, retrying each `503` after a pause.
async fn client(app: &TestApp, customer: &TestUser, listing: &Value, n: usize) -> Client {
    let mut seen = Client {
        key: format!("terminated-{n}"),
        ..Client::default()
    };
    let body = json!({"listing_id": listing["id"], "quantity": 1});
    for _ in 0..ATTEMPTS {
        let tried_at = chrono::Utc::now();
        let resp = app
            .post_json_with_key("/api/v1/bookings", &body, Some(&customer.access), &seen.key)
            .await;
        let status = resp.status();
        let retry_after = resp.headers().contains_key("retry-after");
        let replayed = resp.headers().contains_key("idempotent-replayed");
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        match status {
            StatusCode::CREATED => {
                seen.booking_id = answer["id"].as_str().map(str::to_owned);
                seen.replayed = replayed;
                seen.from_earlier_try = answer["created_at"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|created| created < tried_at);
                return seen;
            }
            StatusCode::SERVICE_UNAVAILABLE if retry_after => {
                seen.unavailable += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            other => {
                seen.unexpected.push((other, answer.to_string()));
                return seen;
            }
        }
    }
    seen
}

/// Terminates every other backend of the test database every 100 to 300 ms, [`SWEEPS`]
/// times or until `stop`; returns the sweeps made and the backends they ended.
async fn terminate_backends(database_url: String, stop: Arc<AtomicBool>) -> (usize, i64) {
    let mut conn = PgConnection::connect(&database_url).await.unwrap();
    let (mut sweeps, mut ended) = (0, 0);
    while !stop.load(Ordering::Relaxed) && sweeps < SWEEPS {
        tokio::time::sleep(Duration::from_millis(rand::random_range(100..=300))).await;
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        sweeps += 1;
        ended += n;
    }
    (sweeps, ended)
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    app.db
        .query_one_raw(Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap()
}

#[tokio::test]
async fn clients_retrying_through_terminated_database_connections_each_book_once() {
    // One customer books for every client: a booking is an unpaid hold until its payment's
    // answer is recorded (a try answered 503 can leave it so until the safety net runs), so
    // the cap on open holds is lifted to the number of clients.
    let clients = CLIENTS.to_string();
    let app = spawn_app_with(&[("MAX_OPEN_HOLDS_PER_CUSTOMER", clients.as_str())]).await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let capacity = 1000;
    let listing = app
        .create_listing(&provider, json!({"capacity": capacity}))
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let terminator = tokio::spawn(terminate_backends(app.database_url.clone(), stop.clone()));
    let clients: Vec<Client> = tokio::time::timeout(
        RUN_LIMIT,
        futures::stream::iter(0..CLIENTS)
            .map(|n| client(&app, &customer, &listing, n))
            .buffer_unordered(AT_ONCE)
            .collect(),
    )
    .await
    .expect("the clients finish in time");
    stop.store(true, Ordering::Relaxed);
    let (sweeps, ended) = terminator.await.unwrap();

    let unavailable: usize = clients.iter().map(|c| c.unavailable).sum();
    let retried = clients.iter().filter(|c| c.unavailable > 0).count();
    let most = clients.iter().map(|c| c.unavailable).max().unwrap_or(0);
    let replayed = clients.iter().filter(|c| c.replayed).count();
    let from_earlier = clients.iter().filter(|c| c.from_earlier_try).count();
    eprintln!(
        "{sweeps} sweeps ended {ended} backends; {unavailable} answers were 503, \
         {retried} clients retried (at most {most} times); {replayed} were answered by a \
         replay, {from_earlier} with the booking a try answered 503 had made"
    );
    let unexpected: Vec<_> = clients
        .iter()
        .filter(|c| !c.unexpected.is_empty())
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    let unbooked: Vec<_> = clients.iter().filter(|c| c.booking_id.is_none()).collect();
    assert!(unbooked.is_empty(), "{unbooked:#?}");
    assert!(
        unavailable > 0,
        "the terminations caused no 503: the test proves nothing"
    );

    // One booking per key, the one its client was answered with, and seats to match.
    let booked: HashMap<String, String> = app
        .db
        .query_all_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT idempotency_key, id::text AS id FROM bookings",
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            (
                row.try_get("", "idempotency_key").unwrap(),
                row.try_get("", "id").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        scalar(&app, "SELECT count(*) FROM bookings").await,
        CLIENTS as i64
    );
    for c in &clients {
        assert_eq!(booked.get(&c.key), c.booking_id.as_ref(), "{}", c.key);
    }
    assert_eq!(
        scalar(&app, "SELECT seats_left::bigint FROM listings").await,
        capacity - CLIENTS as i64
    );
    // Every claim ended with its answer stored.
    orderly_testing::wait_until(
        "every claim has its answer",
        Duration::from_secs(10),
        || async {
            scalar(
                &app,
                "SELECT count(*) FROM idempotency_keys WHERE response_status IS NULL",
            )
            .await
                == 0
        },
    )
    .await;
}
