//! Idempotency claims end whatever happens to the connection that ended them: a release or
//! a store on a killed connection still lands, a retry waits for an unanswered first
//! request, and a claim dropped unended frees its key.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use orderly_api::idempotency::{self, Outcome, WAIT_FOR_FIRST};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement, TransactionTrait,
};
use tokio::time::Instant;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};
use serde_json::{Value, json};

/// A pool of one connection that is not tested before use, as the API's pool mostly is: a
/// killed connection fails the next statement given to it.
async fn one_connection(app: &TestApp) -> DatabaseConnection {
    let mut options = ConnectOptions::new(app.database_url.clone());
    options
        .max_connections(1)
        .min_connections(1)
        .test_before_acquire(false)
        .sqlx_logging(false);
    Database::connect(options).await.unwrap()
}

/// Terminates the pool's one connection and waits until its backend is gone.
async fn kill_connection_of(app: &TestApp, db: &DatabaseConnection) {
    let pid: i32 = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT pg_backend_pid() AS pid",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "pid")
        .unwrap();
    // The pool pings a connection handed back before it is idle again: kill it only once
    // idle, or the ping finds it dead and the pool opens a fresh one.
    let pool = db.get_postgres_connection_pool();
    orderly_testing::wait_until("the connection is idle", Duration::from_secs(5), || {
        let idle = pool.num_idle() == 1;
        async move { idle }
    })
    .await;
    let alive = |sql: &'static str| {
        app.db.query_one_raw(Statement::from_sql_and_values(
            app.db.get_database_backend(),
            sql,
            [pid.into()],
        ))
    };
    alive("SELECT pg_terminate_backend($1) AS done")
        .await
        .unwrap();
    orderly_testing::wait_until("the backend is gone", Duration::from_secs(5), || {
        let query = alive("SELECT 1 AS one FROM pg_stat_activity WHERE pid = $1");
        async move { query.await.unwrap().is_none() }
    })
    .await;
}

fn booking_request() -> HttpRequest {
    TestRequest::post()
        .uri("/api/v1/bookings")
        .to_http_request()
}

async fn begin(db: &DatabaseConnection, user: Uuid, key: &str) -> Outcome {
    idempotency::begin(db, &booking_request(), user, key.to_owned())
        .await
        .unwrap()
}

async fn claim(db: &DatabaseConnection, user: Uuid, key: &str) -> idempotency::Claim {
    match begin(db, user, key).await {
        Outcome::Run(claim) => claim,
        Outcome::Replay(_) => panic!("expected to claim {key}"),
    }
}

async fn claims_of(app: &TestApp, key: &str) -> i64 {
    app.db
        .query_one_raw(Statement::from_sql_and_values(
            app.db.get_database_backend(),
            "SELECT count(*) AS n FROM idempotency_keys WHERE key = $1",
            [key.into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap()
}

#[tokio::test]
async fn a_claim_whose_connection_was_killed_is_still_released_for_the_retry() {
    let app = spawn_app().await;
    let customer = app.register("customer").await;
    let db = one_connection(&app).await;
    // The kill makes the next statement fail: a release made once would leave the claim.
    kill_connection_of(&app, &db).await;
    assert!(db.execute_unprepared("SELECT 1").await.is_err());

    let claim = claim(&db, customer.id, "k-1").await;
    kill_connection_of(&app, &db).await;
    let started = Instant::now();
    claim.release().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "released inline"
    );
    assert_eq!(claims_of(&app, "k-1").await, 0);

    let started = Instant::now();
    assert!(matches!(
        begin(&db, customer.id, "k-1").await,
        Outcome::Run(_)
    ));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the retry ran at once"
    );
}

#[tokio::test]
async fn an_answer_whose_store_hit_a_killed_connection_is_still_replayed() {
    let app = spawn_app().await;
    let customer = app.register("customer").await;
    let db = one_connection(&app).await;
    let claim = claim(&db, customer.id, "k-2").await;
    kill_connection_of(&app, &db).await;
    claim
        .store(StatusCode::CREATED, br#"{"id":"first"}"#.to_vec())
        .await;

    let Outcome::Replay(replay) = begin(&db, customer.id, "k-2").await else {
        panic!("expected the stored answer");
    };
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    let body = actix_web::body::to_bytes(replay.into_body()).await.unwrap();
    assert_eq!(&body[..], br#"{"id":"first"}"#);
}

#[tokio::test]
async fn a_retry_waits_for_the_unanswered_first_request_and_gets_its_answer() {
    let app = spawn_app().await;
    let customer = app.register("customer").await;
    let first = claim(&app.db, customer.id, "k-3").await;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        first.store(StatusCode::CREATED, b"{}".to_vec()).await;
    });
    let started = Instant::now();
    let Outcome::Replay(replay) = begin(&app.db, customer.id, "k-3").await else {
        panic!("expected the first answer");
    };
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert!(started.elapsed() < WAIT_FOR_FIRST);

    let failed = claim(&app.db, customer.id, "k-4").await;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        failed.release().await;
    });
    assert!(matches!(
        begin(&app.db, customer.id, "k-4").await,
        Outcome::Run(_)
    ));
}

#[tokio::test]
async fn a_first_request_still_running_after_the_wait_is_a_conflict() {
    let app = spawn_app().await;
    let customer = app.register("customer").await;
    let _first = claim(&app.db, customer.id, "k-5").await;
    let started = Instant::now();
    let refused = idempotency::begin(&app.db, &booking_request(), customer.id, "k-5".into())
        .await
        .unwrap_err();
    assert_eq!(refused.code().as_str(), "conflict");
    assert!(started.elapsed() >= WAIT_FOR_FIRST);
}

#[tokio::test]
async fn a_claim_dropped_unended_frees_its_key() {
    let app = spawn_app().await;
    let customer = app.register("customer").await;
    drop(claim(&app.db, customer.id, "k-6").await);
    assert!(matches!(
        begin(&app.db, customer.id, "k-6").await,
        Outcome::Run(_)
    ));
}

#[tokio::test]
async fn a_release_that_cannot_land_at_once_lands_from_the_background() {
    let app = spawn_app().await;
    let customer = app.register("customer").await;
    let claim = claim(&app.db, customer.id, "k-7").await;
    // Another session holds the row: the release waits on it past its inline time.
    let blocker = app.db.begin().await.unwrap();
    blocker
        .execute_unprepared("SELECT 1 FROM idempotency_keys WHERE key = 'k-7' FOR UPDATE")
        .await
        .unwrap();
    let started = Instant::now();
    claim.release().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered anyway"
    );
    assert_eq!(claims_of(&app, "k-7").await, 1);

    blocker.commit().await.unwrap();
    orderly_testing::wait_until(
        "the background released the key",
        Duration::from_secs(5),
        || async { claims_of(&app, "k-7").await == 0 },
    )
    .await;
}

#[tokio::test]
async fn two_requests_racing_with_one_key_make_one_booking_and_get_its_answer() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({})).await;
    let body = json!({"listing_id": listing["id"], "quantity": 1});
    let post = || app.post_json_with_key("/api/v1/bookings", &body, Some(&customer.access), "race");
    let (a, b) = tokio::join!(post(), post());
    assert_eq!(a.status(), reqwest::StatusCode::CREATED);
    assert_eq!(b.status(), reqwest::StatusCode::CREATED);
    let replays = [&a, &b]
        .iter()
        .filter(|r| r.headers().contains_key("idempotent-replayed"))
        .count();
    assert!(replays <= 1, "{replays}");
    let a: Value = a.json().await.unwrap();
    let b: Value = b.json().await.unwrap();
    assert_eq!(a["id"], b["id"]);
    assert_eq!(app.count("bookings").await, 1);
}
