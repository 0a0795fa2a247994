//! `GET /api/v1/admin/schedules`: the scheduler's table with each entry's last and next run
//! and the leader, for admins only.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

const PATH: &str = "/api/v1/admin/schedules";

#[tokio::test]
async fn schedules_refuse_everyone_but_admins() {
    let app = spawn_app().await;
    for role in ["customer", "provider"] {
        let user = app.register(role).await;
        let resp = app.get(PATH, Some(&user.access)).await;
        assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    }
    assert_eq!(app.get(PATH, None).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn schedules_show_each_entry_with_its_last_and_next_run_and_the_leader() {
    let app = spawn_app_with(&[
        ("REPORT_TZ", "Europe/Paris"),
        ("SWEEP_CRON", "0 */5 * * * *"),
    ])
    .await;
    let admin = app.admin().await;
    let body: Value = app.get_json(PATH, Some(&admin.access)).await;
    assert_eq!(body["leader"], Value::Null);
    let names: Vec<&str> = body["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "daily_report",
            "reminders",
            "sweep",
            "retention",
            "reconcile_payments"
        ]
    );
    let report = &body["schedules"][0];
    assert_eq!(report["expression"], "0 0 2 * * *");
    assert_eq!(report["timezone"], "Europe/Paris");
    assert_eq!(report["last_run"], Value::Null);
    let next: DateTime<Utc> = report["next_run"].as_str().unwrap().parse().unwrap();
    // 02:00 in Paris: 01:00 UTC in winter, 00:00 in summer.
    use chrono::Timelike;
    assert!(
        matches!((next.hour(), next.minute(), next.second()), (0 | 1, 0, 0)),
        "{next}"
    );
    assert!(next > Utc::now());
    assert_eq!(body["schedules"][2]["expression"], "0 */5 * * * *");

    app.db
        .execute_unprepared(
            "INSERT INTO leases (name, holder, token, lease_until)
             VALUES ('scheduler', 'sched-0:1:abcdef', 3, now() + interval '10 seconds');
             INSERT INTO schedule_runs (schedule_name, scheduled_for, leader, started_at,
                                        finished_at, status, error, task_id)
             VALUES ('sweep', '2026-11-20T10:00:00Z', 'sched-0:1:abcdef', '2026-11-20T10:00:01Z',
                     '2026-11-20T10:00:03Z', 'failed', 'transient failure: database', 'sweep:2026-11-20T10:00:00Z'),
                    ('sweep', '2026-11-20T09:55:00Z', 'sched-0:1:abcdef', '2026-11-20T09:55:01Z',
                     '2026-11-20T09:55:02Z', 'done', NULL, 'sweep:2026-11-20T09:55:00Z')",
        )
        .await
        .unwrap();
    let body: Value = app.get_json(PATH, Some(&admin.access)).await;
    assert_eq!(body["leader"]["holder"], "sched-0:1:abcdef");
    assert_eq!(body["leader"]["token"], 3);
    let last = &body["schedules"][2]["last_run"];
    assert_eq!(last["scheduled_for"], "2026-11-20T10:00:00Z");
    assert_eq!(last["status"], "failed");
    assert_eq!(last["error"], "transient failure: database");
    assert_eq!(last["finished_at"], "2026-11-20T10:00:03Z");
    assert_eq!(last["leader"], "sched-0:1:abcdef");
    assert_eq!(last["job"], "sweep:2026-11-20T10:00:00Z");
    assert_eq!(body["schedules"][0]["last_run"], Value::Null);
}
