//! The queues and jobs admin endpoints: admins only; counts and lists read from the outbox
//! by state; retry, discard and their bulk forms atomic and audited, racing a worker's
//! start and end with one consistent outcome; pause and resume recorded in PostgreSQL and
//! flagged in Redis.

use std::time::Duration;

use orderly_jobs::outbox;
use orderly_jobs::pauses::flag_key;
use orderly_jobs::{Queue, outbox::Window};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement, Value as DbValue};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, assert_problem, fields, spawn_app};

/// An outbox row as a test wants it (the dashboard's tests make theirs with it too).
pub(crate) struct Row<'a> {
    pub(crate) queue: &'a str,
    pub(crate) job_type: &'a str,
    pub(crate) payload: Value,
    pub(crate) status: &'a str,
    /// Seconds from now (negative: in the past).
    pub(crate) run_in_s: i64,
    pub(crate) attempts: i32,
    pub(crate) last_error: Option<&'a str>,
    /// Seconds ago, for a finished row.
    pub(crate) completed_ago_s: Option<i64>,
    pub(crate) locked_by: Option<&'a str>,
}

impl Default for Row<'_> {
    fn default() -> Self {
        Self {
            queue: "bookings",
            job_type: "noop",
            payload: json!({"id": Uuid::new_v4()}),
            status: "pending",
            run_in_s: -1,
            attempts: 0,
            last_error: None,
            completed_ago_s: None,
            locked_by: None,
        }
    }
}

pub(crate) async fn insert(app: &TestApp, row: Row<'_>) -> Uuid {
    let id = Uuid::now_v7();
    let running = row.status == "running";
    app.db
        .execute_raw(Statement::from_sql_and_values(
            app.db.get_database_backend(),
            "INSERT INTO outbox (id, queue, job_type, payload, task_id, run_at, status, attempts,
                                 last_error, completed_at, locked_by, lease_until, started_at,
                                 enqueued_at)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7, $8, $9,
                     now() - make_interval(secs => $10::float8),
                     $11, CASE WHEN $12 THEN now() + interval '30 seconds' END,
                     CASE WHEN $12 THEN now() END,
                     CASE WHEN $7 IN ('enqueued', 'running') THEN now() END)",
            vec![
                id.into(),
                row.queue.into(),
                row.job_type.into(),
                row.payload.into(),
                format!("test:{id}").into(),
                (row.run_in_s as f64).into(),
                row.status.into(),
                row.attempts.into(),
                row.last_error.map(str::to_owned).into(),
                row.completed_ago_s.map(|s| s as f64).into(),
                row.locked_by.map(str::to_owned).into(),
                running.into(),
            ],
        ))
        .await
        .unwrap();
    id
}

pub(crate) async fn sql(app: &TestApp, sql: &str, values: Vec<DbValue>) -> Vec<Value> {
    app.db
        .query_all_raw(Statement::from_sql_and_values(
            app.db.get_database_backend(),
            format!("SELECT to_jsonb(t) AS row FROM ({sql}) t"),
            values,
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<Value>("", "row").unwrap())
        .collect()
}

pub(crate) async fn job_row(app: &TestApp, id: Uuid) -> Option<Value> {
    sql(
        app,
        "SELECT status, attempts, last_error, run_at <= now() AS due FROM outbox WHERE id = $1",
        vec![id.into()],
    )
    .await
    .pop()
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("x-request-id", "req-admin-1");
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

async fn post(app: &TestApp, path: &str, user: &TestUser) -> reqwest::Response {
    send(app, reqwest::Method::POST, path, Some(&user.access)).await
}

async fn delete(app: &TestApp, path: &str, user: &TestUser) -> reqwest::Response {
    send(app, reqwest::Method::DELETE, path, Some(&user.access)).await
}

fn every_endpoint(id: Uuid) -> Vec<(reqwest::Method, String)> {
    use reqwest::Method;
    vec![
        (Method::GET, "/api/v1/admin/queues".into()),
        (Method::GET, "/api/v1/admin/jobs".into()),
        (
            Method::POST,
            format!("/api/v1/admin/jobs/bookings/{id}/retry"),
        ),
        (Method::DELETE, format!("/api/v1/admin/jobs/bookings/{id}")),
        (Method::POST, "/api/v1/admin/jobs/retry?state=dead".into()),
        (Method::DELETE, "/api/v1/admin/jobs?state=dead".into()),
        (Method::POST, "/api/v1/admin/queues/bookings/pause".into()),
        (Method::POST, "/api/v1/admin/queues/bookings/resume".into()),
    ]
}

#[tokio::test]
async fn admin_queue_and_job_endpoints_refuse_customers_and_providers_and_ask_anonymous_callers_to_sign_in()
 {
    let app = spawn_app().await;
    let dead = insert(
        &app,
        Row {
            status: "dead",
            attempts: 1,
            last_error: Some("boom"),
            completed_ago_s: Some(1),
            ..Row::default()
        },
    )
    .await;
    for role in ["customer", "provider"] {
        let user = app.register(role).await;
        for (method, path) in every_endpoint(dead) {
            let resp = send(&app, method.clone(), &path, Some(&user.access)).await;
            assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
        }
    }
    for (method, path) in every_endpoint(dead) {
        let resp = send(&app, method.clone(), &path, None).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    assert_eq!(job_row(&app, dead).await.unwrap()["status"], "dead");
    assert_eq!(app.count("audit_log").await, 0);
    assert_eq!(app.count("queue_pauses").await, 0);
}

#[tokio::test]
async fn admin_queues_counts_each_state_per_queue_with_the_backlog_and_the_live_workers() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    // bookings: 2 due (one still in PostgreSQL, one in Redis), 1 scheduled, 1 failed, 1
    // running, 1 dead, 1 done a minute ago and 1 two hours ago.
    insert(
        &app,
        Row {
            run_in_s: -120,
            ..Row::default()
        },
    )
    .await;
    insert(
        &app,
        Row {
            status: "enqueued",
            run_in_s: -5,
            ..Row::default()
        },
    )
    .await;
    insert(
        &app,
        Row {
            run_in_s: 3600,
            ..Row::default()
        },
    )
    .await;
    insert(
        &app,
        Row {
            run_in_s: 60,
            attempts: 1,
            last_error: Some("SMTP 451"),
            ..Row::default()
        },
    )
    .await;
    insert(
        &app,
        Row {
            status: "running",
            attempts: 1,
            locked_by: Some("w-1"),
            ..Row::default()
        },
    )
    .await;
    insert(
        &app,
        Row {
            status: "dead",
            attempts: 3,
            last_error: Some("declined"),
            completed_ago_s: Some(10),
            ..Row::default()
        },
    )
    .await;
    insert(
        &app,
        Row {
            status: "done",
            attempts: 1,
            completed_ago_s: Some(60),
            ..Row::default()
        },
    )
    .await;
    insert(
        &app,
        Row {
            status: "done",
            attempts: 1,
            completed_ago_s: Some(7200),
            ..Row::default()
        },
    )
    .await;
    insert(
        &app,
        Row {
            queue: "email",
            job_type: "send_email",
            status: "dead",
            attempts: 1,
            last_error: Some("bad address"),
            completed_ago_s: Some(5),
            payload: json!({"notification_id": Uuid::new_v4()}),
            ..Row::default()
        },
    )
    .await;
    app.db
        .execute_unprepared(
            "INSERT INTO workers (name, host, pid, queues, concurrency)
             VALUES ('w-1', 'host-a', 42, '{bookings,email}', '{8,4}');
             INSERT INTO workers (name, host, pid, queues, concurrency, heartbeat_at)
             VALUES ('w-gone', 'host-b', 43, '{sms}', '{2}', now() - interval '10 minutes')",
        )
        .await
        .unwrap();

    let body = app
        .get_json("/api/v1/admin/queues", Some(&admin.access))
        .await;
    let queues = body["queues"].as_array().unwrap();
    let names: Vec<&str> = queues
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bookings", "payments", "email", "sms", "reports"]);
    let bookings = &queues[0];
    for (field, n) in [
        ("pending", 2),
        ("backlog", 1),
        ("scheduled", 1),
        ("failed", 1),
        ("running", 1),
        ("dead", 1),
        ("done_last_hour", 1),
    ] {
        assert_eq!(bookings[field], n, "bookings.{field} in {bookings}");
    }
    let age = bookings["oldest_pending_age_s"].as_f64().unwrap();
    assert!((119.0..180.0).contains(&age), "{age}");
    assert_eq!(bookings["paused"], false);
    assert_eq!(queues[2]["dead"], 1);
    assert_eq!(queues[1]["pending"], 0);
    assert_eq!(queues[1]["oldest_pending_age_s"], 0.0);
    assert_eq!(body["outbox"]["backlog"], 1);
    assert!(body["outbox"]["oldest_age_s"].as_f64().unwrap() >= 119.0);
    let workers = body["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "only live workers: {workers:?}");
    assert_eq!(workers[0]["name"], "w-1");
    assert_eq!(workers[0]["host"], "host-a");
    assert_eq!(
        workers[0]["queues"],
        json!([{"queue": "bookings", "concurrency": 8}, {"queue": "email", "concurrency": 4}])
    );
    assert!(workers[0]["last_heartbeat"].is_string());
    assert!(workers[0]["heartbeat_age_s"].as_f64().unwrap() < 5.0);
}

#[tokio::test]
async fn admin_jobs_are_listed_newest_first_filtered_by_queue_state_type_and_booking_and_paginated()
{
    let app = spawn_app().await;
    let admin = app.admin().await;
    let booking = Uuid::new_v4();
    let other_booking = Uuid::new_v4();
    // A message of the booking: its job names only the notification.
    let customer = app.register("customer").await;
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO listings (id, provider_id, title, starts_at, capacity, seats_left, price_cents, currency)
             VALUES ('{listing}', '{customer}', 'L', now() + interval '1 day', 5, 5, 100, 'eur');
             INSERT INTO bookings (id, listing_id, customer_id, quantity, amount_cents, currency, status, hold_expires_at)
             VALUES ('{booking}', '{listing}', '{customer}', 1, 100, 'eur', 'pending_payment', now() + interval '15 minutes');",
            listing = Uuid::new_v4(),
            customer = customer.id,
        ))
        .await
        .unwrap();
    let notification = Uuid::new_v4();
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO notifications (id, dedup_key, booking_id, channel, kind, recipient, status)
             VALUES ('{notification}', 'n:{notification}', '{booking}', 'email', 'booking_confirmed', 'a@example.com', 'failed')"
        ))
        .await
        .unwrap();
    let expire = insert(
        &app,
        Row {
            job_type: "expire_booking",
            payload: json!({"booking_id": booking}),
            status: "dead",
            attempts: 2,
            last_error: Some("boom"),
            completed_ago_s: Some(1),
            ..Row::default()
        },
    )
    .await;
    let _other = insert(
        &app,
        Row {
            job_type: "expire_booking",
            payload: json!({"booking_id": other_booking}),
            ..Row::default()
        },
    )
    .await;
    let email = insert(
        &app,
        Row {
            queue: "email",
            job_type: "send_email",
            payload: json!({"notification_id": notification}),
            status: "dead",
            attempts: 1,
            last_error: Some("550 no such user"),
            completed_ago_s: Some(1),
            ..Row::default()
        },
    )
    .await;
    let failed = insert(
        &app,
        Row {
            run_in_s: 30,
            attempts: 1,
            last_error: Some("timeout"),
            ..Row::default()
        },
    )
    .await;
    let running = insert(
        &app,
        Row {
            status: "running",
            attempts: 1,
            locked_by: Some("w-1"),
            ..Row::default()
        },
    )
    .await;
    app.db
        .execute_unprepared("INSERT INTO workers (name, host, pid, queues, concurrency) VALUES ('w-1', 'h', 1, '{bookings}', '{4}')")
        .await
        .unwrap();

    let all = app
        .get_json("/api/v1/admin/jobs", Some(&admin.access))
        .await;
    assert_eq!(all["count"], 5);
    let ids: Vec<&str> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], running.to_string(), "newest first");
    assert_eq!(ids[4], expire.to_string());

    let page = |q: &str| format!("/api/v1/admin/jobs?{q}");
    let by_booking = app
        .get_json(&page(&format!("booking_id={booking}")), Some(&admin.access))
        .await;
    let found: Vec<&str> = by_booking["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        found,
        [email.to_string(), expire.to_string()],
        "directly or through its message"
    );
    for job in by_booking["results"].as_array().unwrap() {
        assert_eq!(job["booking_id"], booking.to_string());
    }

    let dead = app.get_json(&page("state=dead"), Some(&admin.access)).await;
    assert_eq!(dead["count"], 2);
    let dead_email = app
        .get_json(&page("state=dead&queue=email"), Some(&admin.access))
        .await;
    assert_eq!(dead_email["count"], 1);
    let job = &dead_email["results"][0];
    assert_eq!(job["id"], email.to_string());
    assert_eq!(job["type"], "send_email");
    assert_eq!(job["state"], "dead");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["last_error"], "550 no such user");
    assert!(job["completed_at"].is_string());

    let failing = app
        .get_json(&page("state=failed"), Some(&admin.access))
        .await;
    assert_eq!(failing["count"], 1);
    assert_eq!(failing["results"][0]["id"], failed.to_string());
    assert_eq!(
        failing["results"][0]["next_retry_at"],
        failing["results"][0]["run_at"]
    );

    let run = app
        .get_json(&page("state=running"), Some(&admin.access))
        .await;
    assert_eq!(run["results"][0]["locked_by"], "w-1");
    assert!(run["results"][0]["heartbeat_age_s"].as_f64().unwrap() < 5.0);

    let typed = app
        .get_json(&page("type=expire_booking"), Some(&admin.access))
        .await;
    assert_eq!(typed["count"], 2);

    let first = app
        .get_json(&page("page_size=2"), Some(&admin.access))
        .await;
    assert_eq!(first["count"], 5);
    assert_eq!(first["results"].as_array().unwrap().len(), 2);
    assert!(first["previous"].is_null());
    let next = first["next"].as_str().unwrap();
    assert!(
        next.contains("page=2") && next.contains("page_size=2"),
        "{next}"
    );
    let last = app
        .get_json(&page("page_size=2&page=3"), Some(&admin.access))
        .await;
    assert_eq!(last["results"].as_array().unwrap().len(), 1);
    assert!(last["next"].is_null());

    for (query, field) in [
        ("queue=pigeons", "queue"),
        ("state=stuck", "state"),
        ("type=no_such_job", "type"),
        ("booking_id=nope", "booking_id"),
        ("page_size=101", "page_size"),
    ] {
        let resp = app.get(&page(query), Some(&admin.access)).await;
        let problem =
            assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(fields(&problem), [field], "{query}: {problem}");
    }
}

pub(crate) async fn audit(app: &TestApp) -> Vec<Value> {
    sql(
        app,
        "SELECT actor_id, action, entity_type, entity_id, details, request_id FROM audit_log ORDER BY id",
        vec![],
    )
    .await
}

#[tokio::test]
async fn retrying_a_dead_job_makes_it_due_now_keeps_its_attempts_reopens_its_message_and_is_audited()
 {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let notification = Uuid::new_v4();
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO notifications (id, dedup_key, channel, kind, recipient, status, last_error)
             VALUES ('{notification}', 'n:{notification}', 'email', 'booking_confirmed', 'a@example.com', 'failed', 'SMTP 451')"
        ))
        .await
        .unwrap();
    let id = insert(
        &app,
        Row {
            queue: "email",
            job_type: "send_email",
            payload: json!({"notification_id": notification}),
            status: "dead",
            attempts: 20,
            last_error: Some("gave up after 20 attempts: SMTP 451"),
            completed_ago_s: Some(30),
            ..Row::default()
        },
    )
    .await;

    let resp = post(
        &app,
        &format!("/api/v1/admin/jobs/email/{id}/retry"),
        &admin,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["state"], "pending");
    assert_eq!(job["attempts"], 20, "attempts are kept");
    assert!(job["completed_at"].is_null());
    let row = job_row(&app, id).await.unwrap();
    assert_eq!(row["status"], "pending");
    assert_eq!(row["due"], true);
    let message = sql(
        &app,
        "SELECT status, last_error FROM notifications WHERE id = $1",
        vec![notification.into()],
    )
    .await;
    assert_eq!(message[0], json!({"status": "pending", "last_error": null}));
    let audit = audit(&app).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["actor_id"], admin.id.to_string());
    assert_eq!(audit[0]["action"], "job.retried");
    assert_eq!(audit[0]["entity_type"], "job");
    assert_eq!(audit[0]["entity_id"], id.to_string());
    assert_eq!(audit[0]["request_id"], "req-admin-1");
    assert_eq!(audit[0]["details"]["from"], "dead");
    assert_eq!(
        audit[0]["details"]["last_error"],
        "gave up after 20 attempts: SMTP 451"
    );

    // Now pending: a second retry is a conflict, and changes nothing.
    let resp = post(
        &app,
        &format!("/api/v1/admin/jobs/email/{id}/retry"),
        &admin,
    )
    .await;
    assert_problem(resp, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(app.count("audit_log").await, 1);
}

#[tokio::test]
async fn admin_job_actions_answer_404_for_unknown_jobs_or_queues_that_do_not_match_and_409_for_running_or_done_jobs()
 {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let running = insert(
        &app,
        Row {
            status: "running",
            attempts: 1,
            locked_by: Some("w-1"),
            ..Row::default()
        },
    )
    .await;
    let done = insert(
        &app,
        Row {
            status: "done",
            attempts: 1,
            completed_ago_s: Some(1),
            ..Row::default()
        },
    )
    .await;
    let dead = insert(
        &app,
        Row {
            status: "dead",
            attempts: 1,
            last_error: Some("x"),
            completed_ago_s: Some(1),
            ..Row::default()
        },
    )
    .await;
    for id in [running, done] {
        let resp = post(
            &app,
            &format!("/api/v1/admin/jobs/bookings/{id}/retry"),
            &admin,
        )
        .await;
        assert_problem(resp, StatusCode::CONFLICT, "conflict").await;
        let resp = delete(&app, &format!("/api/v1/admin/jobs/bookings/{id}"), &admin).await;
        assert_problem(resp, StatusCode::CONFLICT, "conflict").await;
    }
    assert_eq!(job_row(&app, running).await.unwrap()["status"], "running");
    assert_eq!(job_row(&app, done).await.unwrap()["status"], "done");
    for path in [
        format!("/api/v1/admin/jobs/bookings/{}", Uuid::now_v7()),
        format!("/api/v1/admin/jobs/email/{dead}"),
        "/api/v1/admin/jobs/bookings/not-a-uuid".to_owned(),
    ] {
        let resp = post(&app, &format!("{path}/retry"), &admin).await;
        assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
        let resp = delete(&app, &path, &admin).await;
        assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    }
    let resp = post(
        &app,
        &format!("/api/v1/admin/jobs/pigeons/{dead}/retry"),
        &admin,
    )
    .await;
    let problem = assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(fields(&problem), ["queue"]);
    let resp = delete(&app, &format!("/api/v1/admin/jobs/pigeons/{dead}"), &admin).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(job_row(&app, dead).await.unwrap()["status"], "dead");
    assert_eq!(app.count("audit_log").await, 0);
}

#[tokio::test]
async fn discarding_a_dead_or_pending_job_deletes_it_gives_up_its_message_and_is_audited() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dead = insert(
        &app,
        Row {
            status: "dead",
            attempts: 1,
            last_error: Some("x"),
            completed_ago_s: Some(1),
            ..Row::default()
        },
    )
    .await;
    let notification = Uuid::new_v4();
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO notifications (id, dedup_key, channel, kind, recipient)
             VALUES ('{notification}', 'n:{notification}', 'sms', 'booking_confirmed', '+15005550006')"
        ))
        .await
        .unwrap();
    let queued = insert(
        &app,
        Row {
            queue: "sms",
            job_type: "send_sms",
            status: "enqueued",
            payload: json!({"notification_id": notification}),
            ..Row::default()
        },
    )
    .await;

    let resp = delete(&app, &format!("/api/v1/admin/jobs/bookings/{dead}"), &admin).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(job_row(&app, dead).await.is_none());
    let resp = delete(&app, &format!("/api/v1/admin/jobs/sms/{queued}"), &admin).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(job_row(&app, queued).await.is_none());
    let message = sql(
        &app,
        "SELECT status, last_error FROM notifications WHERE id = $1",
        vec![notification.into()],
    )
    .await;
    assert_eq!(
        message[0],
        json!({"status": "failed", "last_error": "discarded by an operator"})
    );
    let audit = audit(&app).await;
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["entity_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("job.discarded", dead.to_string().as_str()),
            ("job.discarded", queued.to_string().as_str())
        ]
    );
    assert_eq!(
        audit[1]["details"]["payload"]["notification_id"],
        notification.to_string()
    );
    // Gone: a second discard is 404.
    let resp = delete(&app, &format!("/api/v1/admin/jobs/bookings/{dead}"), &admin).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn bulk_retry_and_discard_take_a_queues_jobs_in_one_state_with_one_audit_row_each() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut dead = Vec::new();
    for _ in 0..3 {
        dead.push(
            insert(
                &app,
                Row {
                    status: "dead",
                    attempts: 1,
                    last_error: Some("x"),
                    completed_ago_s: Some(1),
                    ..Row::default()
                },
            )
            .await,
        );
    }
    let other_queue = insert(
        &app,
        Row {
            queue: "payments",
            job_type: "capture_payment",
            payload: json!({"booking_id": Uuid::new_v4()}),
            status: "dead",
            attempts: 1,
            last_error: Some("x"),
            completed_ago_s: Some(1),
            ..Row::default()
        },
    )
    .await;
    let failed = insert(
        &app,
        Row {
            run_in_s: 600,
            attempts: 1,
            last_error: Some("timeout"),
            ..Row::default()
        },
    )
    .await;

    let resp = post(
        &app,
        "/api/v1/admin/jobs/retry?queue=bookings&state=dead",
        &admin,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["count"], 3);
    assert_eq!(body["more"], false);
    for id in &dead {
        assert_eq!(job_row(&app, *id).await.unwrap()["status"], "pending");
    }
    assert_eq!(job_row(&app, other_queue).await.unwrap()["status"], "dead");
    assert_eq!(job_row(&app, failed).await.unwrap()["due"], false);

    let resp = delete(
        &app,
        "/api/v1/admin/jobs?queue=bookings&state=failed",
        &admin,
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["count"], 1);
    assert_eq!(body["ids"], json!([failed]));
    assert!(job_row(&app, failed).await.is_none());

    for (query, field) in [
        ("state=running", "state"),
        ("state=dead&queue=pigeons", "queue"),
        ("", "state"),
    ] {
        let resp = post(&app, &format!("/api/v1/admin/jobs/retry?{query}"), &admin).await;
        let problem =
            assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(fields(&problem), [field], "{query}");
    }
    let resp = delete(&app, "/api/v1/admin/jobs?state=done", &admin).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let audit = audit(&app).await;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0]["action"], "jobs.retried");
    assert_eq!(audit[0]["entity_type"], "queue");
    assert_eq!(audit[0]["entity_id"], "bookings");
    assert_eq!(audit[0]["details"]["count"], 3);
    assert_eq!(audit[1]["action"], "jobs.discarded");
}

#[tokio::test]
async fn pausing_a_queue_records_it_flags_it_in_redis_stops_the_relay_claiming_it_and_resume_undoes_both()
 {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut redis = orderly_core::redis_conn::connect(&app.settings)
        .await
        .unwrap();
    let flag = flag_key(&app.settings.redis_prefix, Queue::Email);
    let job = insert(
        &app,
        Row {
            queue: "email",
            job_type: "noop",
            ..Row::default()
        },
    )
    .await;

    let resp = post(&app, "/api/v1/admin/queues/email/pause", &admin).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"queue": "email", "paused": true, "changed": true})
    );
    let exists: bool = redis::cmd("EXISTS")
        .arg(&flag)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(exists, "the workers' flag is raised");
    let queues = app
        .get_json("/api/v1/admin/queues", Some(&admin.access))
        .await;
    assert_eq!(queues["queues"][2]["queue"], "email");
    assert_eq!(queues["queues"][2]["paused"], true);
    assert!(queues["queues"][2]["paused_at"].is_string());
    assert_eq!(queues["queues"][0]["paused"], false);

    // The relay's claim leaves a paused queue's due rows where they are.
    let claim = outbox::claim_due(&app.db, 100, Window::default(), &[], &[])
        .await
        .unwrap();
    assert!(claim.rows.is_empty(), "{:?}", claim.rows);
    assert_eq!(job_row(&app, job).await.unwrap()["status"], "pending");

    let again: Value = post(&app, "/api/v1/admin/queues/email/pause", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["changed"], false);

    let resp = post(&app, "/api/v1/admin/queues/email/resume", &admin).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"queue": "email", "paused": false, "changed": true})
    );
    let exists: bool = redis::cmd("EXISTS")
        .arg(&flag)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!exists);
    assert_eq!(app.count("queue_pauses").await, 0);
    let claim = outbox::claim_due(&app.db, 100, Window::default(), &[], &[])
        .await
        .unwrap();
    assert_eq!(claim.rows.len(), 1);
    assert_eq!(claim.rows[0].envelope.outbox_id, job);

    let resp = post(&app, "/api/v1/admin/queues/pigeons/pause", &admin).await;
    let problem = assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(fields(&problem), ["queue"]);
    let actions: Vec<Value> = audit(&app)
        .await
        .into_iter()
        .map(|a| json!([a["action"], a["entity_type"], a["entity_id"]]))
        .collect();
    assert_eq!(
        actions,
        [
            json!(["queue.paused", "queue", "email"]),
            json!(["queue.paused", "queue", "email"]),
            json!(["queue.resumed", "queue", "email"]),
        ]
    );
}

/// Claims the row (as the relay) and starts it (as a worker): `Some(attempt)` if it ran.
async fn relay_and_start(app: &TestApp, id: Uuid, worker: &str) -> Option<u32> {
    let claim = outbox::claim_due(&app.db, 100, Window::default(), &[], &[])
        .await
        .unwrap();
    let envelope = claim
        .rows
        .iter()
        .find(|c| c.envelope.outbox_id == id)?
        .envelope
        .clone();
    outbox::start_many(
        &app.db,
        &[(id, envelope.claim)],
        worker,
        Duration::from_secs(30),
    )
    .await
    .unwrap()
    .get(&id)
    .copied()
}

#[tokio::test]
async fn a_retry_racing_a_worker_burying_the_job_ends_one_consistent_way_and_a_late_end_of_the_old_attempt_changes_nothing()
 {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (mut retried, mut refused) = (0, 0);
    for round in 0..12 {
        let id = insert(&app, Row::default()).await;
        let attempt = relay_and_start(&app, id, "w-1")
            .await
            .expect("the run starts");
        assert_eq!(attempt, 1);
        let path = format!("/api/v1/admin/jobs/bookings/{id}/retry");
        // The worker's end and the operator's retry at the same moment.
        let (buried, resp) = tokio::join!(
            outbox::bury(&app.db, id, attempt, "declined"),
            post(&app, &path, &admin),
        );
        assert!(buried.unwrap(), "the worker's end is recorded either way");
        match resp.status() {
            StatusCode::OK => {
                retried += 1;
                // The job runs again as attempt 2; the first attempt's late writes do nothing.
                let again = relay_and_start(&app, id, "w-2").await;
                assert_eq!(again, Some(2), "round {round}");
                outbox::complete_many(&app.db, &[(id, 1)]).await.unwrap();
                outbox::retry_later(&app.db, id, 1, Duration::from_secs(60), "late")
                    .await
                    .unwrap();
                assert!(!outbox::bury(&app.db, id, 1, "late").await.unwrap());
                let row = job_row(&app, id).await.unwrap();
                assert_eq!(row["status"], "running", "round {round}: {row}");
                outbox::complete_many(&app.db, &[(id, 2)]).await.unwrap();
                assert_eq!(job_row(&app, id).await.unwrap()["status"], "done");
            }
            StatusCode::CONFLICT => {
                // The retry read the job running: it stays dead as the worker left it.
                refused += 1;
                let row = job_row(&app, id).await.unwrap();
                assert_eq!(row["status"], "dead", "round {round}");
                assert_eq!(row["last_error"], "declined");
            }
            other => panic!("round {round}: {other}"),
        }
    }
    assert_eq!(app.count("audit_log").await, retried);
    eprintln!("retry racing bury: {retried} retried, {refused} refused");
}

#[tokio::test]
async fn a_discard_racing_a_worker_starting_the_job_either_deletes_it_before_the_start_or_is_refused_as_running()
 {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for round in 0..12 {
        let id = insert(&app, Row::default()).await;
        let claim = outbox::claim_due(&app.db, 100, Window::default(), &[], &[])
            .await
            .unwrap();
        let envelope = claim
            .rows
            .iter()
            .find(|c| c.envelope.outbox_id == id)
            .unwrap()
            .envelope
            .clone();
        let path = format!("/api/v1/admin/jobs/bookings/{id}");
        let runs = [(id, envelope.claim)];
        let (started, resp) = tokio::join!(
            outbox::start_many(&app.db, &runs, "w-1", Duration::from_secs(30)),
            delete(&app, &path, &admin),
        );
        let started = started.unwrap().contains_key(&id);
        match resp.status() {
            StatusCode::NO_CONTENT => {
                assert!(!started, "round {round}: a discarded job never starts");
                assert!(job_row(&app, id).await.is_none());
            }
            StatusCode::CONFLICT => {
                assert!(started, "round {round}: refused only because it runs");
                assert_eq!(job_row(&app, id).await.unwrap()["status"], "running");
                // It ends normally.
                outbox::complete_many(&app.db, &[(id, 1)]).await.unwrap();
            }
            other => panic!("round {round}: {other}"),
        }
    }
}

#[tokio::test]
async fn a_jobs_failed_attempts_are_listed_with_their_errors_timing_and_workers() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = insert(&app, Row::default()).await;
    assert_eq!(relay_and_start(&app, id, "w-1").await, Some(1));
    outbox::retry_later(&app.db, id, 1, Duration::ZERO, "SMTP 451")
        .await
        .unwrap();
    assert_eq!(relay_and_start(&app, id, "w-2").await, Some(2));
    assert!(outbox::bury(&app.db, id, 2, "declined").await.unwrap());
    // A late end of a recorded attempt adds nothing.
    assert!(!outbox::bury(&app.db, id, 2, "again").await.unwrap());

    let body = app
        .get_json("/api/v1/admin/jobs?state=dead", Some(&admin.access))
        .await;
    let job = &body["results"][0];
    assert_eq!(job["id"], id.to_string());
    let attempts = job["failed_attempts"].as_array().unwrap();
    let seen: Vec<Value> = attempts
        .iter()
        .map(|a| json!([a["attempt"], a["outcome"], a["error"], a["worker"]]))
        .collect();
    assert_eq!(
        seen,
        [
            json!([1, "retry", "SMTP 451", "w-1"]),
            json!([2, "dead", "declined", "w-2"]),
        ]
    );
    for a in attempts {
        assert!(a["started_at"].is_string() && a["finished_at"].is_string());
    }

    // Retried by an operator, the history stays; discarded, it goes with the job.
    let resp = post(
        &app,
        &format!("/api/v1/admin/jobs/bookings/{id}/retry"),
        &admin,
    )
    .await;
    let retried: Value = resp.json().await.unwrap();
    assert_eq!(retried["failed_attempts"].as_array().unwrap().len(), 2);
    let resp = delete(&app, &format!("/api/v1/admin/jobs/bookings/{id}"), &admin).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.count("outbox_attempts").await, 0);
}
