//! `POST` and `GET /api/v1/admin/reports/daily`: admins only, a checked `date`, a run
//! enqueued through the outbox with its audit row, and the stored report served as it is.

use chrono::{NaiveDate, Utc};
use orderly_domain::reports::{self, CurrencyTotals, ListingTotals, Report};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, fields, spawn_app};

const PATH: &str = "/api/v1/admin/reports/daily";

async fn post(app: &TestApp, query: &str, token: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("{PATH}{query}")))
        .bearer_auth(token)
        .header("x-request-id", "req-report-1")
        .send()
        .await
        .unwrap()
}

async fn rows(app: &TestApp, sql: &str) -> Vec<Value> {
    app.db
        .query_all_raw(Statement::from_string(
            app.db.get_database_backend(),
            format!("SELECT to_jsonb(t) AS row FROM ({sql}) t"),
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<Value>("", "row").unwrap())
        .collect()
}

#[tokio::test]
async fn daily_report_endpoints_refuse_customers_and_providers() {
    let app = spawn_app().await;
    for role in ["customer", "provider"] {
        let user = app.register(role).await;
        let resp = post(&app, "?date=2026-11-20", &user.access).await;
        assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
        let resp = app
            .get(&format!("{PATH}?date=2026-11-20"), Some(&user.access))
            .await;
        assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
        // Even with a bad date: only an admin learns what a good query is.
        let resp = post(&app, "?date=nope", &user.access).await;
        assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let resp = app.get(&format!("{PATH}?date=2026-11-20"), None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.count("outbox").await, 0);
    assert_eq!(app.count("audit_log").await, 0);
}

#[tokio::test]
async fn daily_report_with_a_bad_date_is_422_naming_the_date() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let tomorrow = (Utc::now() + chrono::Duration::days(2)).date_naive();
    for query in [
        "",
        "?date=",
        "?date=2026-13-01",
        "?date=2026-02-30",
        "?date=20261120",
        "?date=2026-11-20T00:00:00Z",
        "?date=%2B12345-01-01",
        "?day=2026-11-20",
    ] {
        let resp = post(&app, query, &admin.access).await;
        let problem =
            assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(fields(&problem), ["date"], "POST {query}: {problem}");
        let resp = app
            .get(&format!("{PATH}{query}"), Some(&admin.access))
            .await;
        let problem =
            assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(fields(&problem), ["date"], "GET {query}: {problem}");
    }
    // A day that has not begun cannot be reported.
    let resp = post(&app, &format!("?date={tomorrow}"), &admin.access).await;
    let problem = assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(fields(&problem), ["date"]);
    assert_eq!(app.count("outbox").await, 0);
    assert_eq!(app.count("audit_log").await, 0);
}

#[tokio::test]
async fn daily_report_post_is_202_with_one_job_and_one_audit_row_per_request() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let resp = post(&app, "?date=2026-11-20", &admin.access).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["date"], "2026-11-20");
    let request: Uuid = body["request"].as_str().unwrap().parse().unwrap();

    let jobs = rows(
        &app,
        "SELECT queue, job_type, payload, task_id, status, request_id FROM outbox",
    )
    .await;
    assert_eq!(
        jobs,
        [json!({
            "queue": "reports",
            "job_type": "daily_report",
            "payload": {"date": "2026-11-20", "request": request},
            "task_id": format!("daily_report:2026-11-20:{request}"),
            "status": "pending",
            "request_id": "req-report-1",
        })]
    );
    let audit = rows(
        &app,
        "SELECT actor_id, action, entity_type, entity_id, details, request_id FROM audit_log",
    )
    .await;
    assert_eq!(
        audit,
        [json!({
            "actor_id": admin.id,
            "action": "report.requested",
            "entity_type": "daily_report",
            "entity_id": "2026-11-20",
            "details": {"request": request},
            "request_id": "req-report-1",
        })]
    );

    // Asking again is another run, with a job of its own.
    let resp = post(&app, "?date=2026-11-20", &admin.access).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(app.count("outbox").await, 2);
    assert_eq!(app.count("audit_log").await, 2);
}

#[tokio::test]
async fn daily_report_get_is_404_until_the_day_is_stored_then_the_report() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let path = format!("{PATH}?date=2026-11-20");
    let resp = app.get(&path, Some(&admin.access)).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;

    let listing_id = Uuid::now_v7();
    let report = Report {
        date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        timezone: "Europe/Paris".into(),
        generated_at: "2026-11-21T01:00:00.123456Z".parse().unwrap(),
        totals: vec![CurrencyTotals {
            currency: "eur".into(),
            bookings: 2,
            seats: 3,
            gross_cents: 8400,
            refunds_cents: 1000,
            net_cents: 7400,
        }],
        listings: vec![ListingTotals {
            listing_id,
            title: "Kayak, \"sunset\" tour".into(),
            currency: "eur".into(),
            bookings: 2,
            seats: 3,
            gross_cents: 8400,
            refunds_cents: 1000,
            net_cents: 7400,
        }],
    };
    assert!(reports::store(&app.db, &report).await.unwrap());

    let resp = app.get(&path, Some(&admin.access)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "date": "2026-11-20",
            "timezone": "Europe/Paris",
            "generated_at": "2026-11-21T01:00:00.123456Z",
            "totals": [{"currency": "eur", "bookings": 2, "seats": 3, "gross_cents": 8400,
                        "refunds_cents": 1000, "net_cents": 7400}],
            "listings": [{"listing_id": listing_id, "title": "Kayak, \"sunset\" tour",
                          "currency": "eur", "bookings": 2, "seats": 3, "gross_cents": 8400,
                          "refunds_cents": 1000, "net_cents": 7400}],
        })
    );
    let resp = app
        .get(&format!("{PATH}?date=2026-11-21"), Some(&admin.access))
        .await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
}
