//! The `/admin` dashboard over HTTP: its login (admins only, the login limit, a strict
//! session cookie stored hashed), CSRF (token and origin) on every action, actions that
//! change the same rows and audit log as the admin API, the explanation sentence, and the
//! auto-refresh's fragments. `browser` drives it in a real Chromium.

mod browser;

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::admin_jobs::{Row, audit, insert, job_row, sql};
use crate::helpers::{TestApp, TestUser, spawn_app, spawn_app_with};

/// A browser's view of a dashboard session: its cookie and the CSRF token its pages carry.
pub struct Dashboard {
    pub token: String,
    pub csrf: String,
}

/// The dashboard login form, sent from the dashboard's own origin.
pub async fn try_sign_in(app: &TestApp, email: &str, password: &str) -> Response {
    app.client
        .post(app.url("/admin/login"))
        .header("origin", &app.address)
        .form(&[("email", email), ("password", password), ("next", "/admin")])
        .send()
        .await
        .unwrap()
}

/// The session cookie a login answer sets, with its attributes.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("orderly_admin="))
}

/// Signs `user` in to the dashboard, asserting it works, and reads the CSRF token.
pub async fn sign_in(app: &TestApp, user: &TestUser) -> Dashboard {
    let resp = try_sign_in(app, &user.email, &user.password).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(resp.headers()).expect("a session cookie");
    let token = cookie["orderly_admin=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut dashboard = Dashboard {
        token,
        csrf: String::new(),
    };
    let page = dashboard.get(app, "/admin").await;
    assert_eq!(page.status(), StatusCode::OK);
    dashboard.csrf = csrf_of(&page.text().await.unwrap());
    dashboard
}

/// The CSRF token in a page's forms.
pub fn csrf_of(page: &str) -> String {
    let re = regex::Regex::new(r#"name="csrf" value="([0-9a-f]{64})""#).unwrap();
    re.captures(page).expect("a form with the CSRF token")[1].to_owned()
}

impl Dashboard {
    pub async fn get(&self, app: &TestApp, path: &str) -> Response {
        app.client
            .get(app.url(path))
            .header("cookie", format!("orderly_admin={}", self.token))
            .send()
            .await
            .unwrap()
    }

    /// A page's HTML, asserting `200`.
    pub async fn page(&self, app: &TestApp, path: &str) -> String {
        let resp = self.get(app, path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        resp.text().await.unwrap()
    }

    /// Posts a dashboard form from the dashboard's origin with `fields` (the CSRF token
    /// is not added: pass it when the test wants it).
    pub async fn post(
        &self,
        app: &TestApp,
        path: &str,
        origin: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Response {
        let mut req = app
            .client
            .post(app.url(path))
            .header("cookie", format!("orderly_admin={}", self.token))
            .header("x-request-id", "req-dashboard-1")
            .form(fields);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.send().await.unwrap()
    }

    /// Posts a dashboard form as the page would: our origin and the session's token.
    pub async fn act(&self, app: &TestApp, path: &str) -> Response {
        self.post(app, path, Some(&app.address), &[("csrf", &self.csrf)])
            .await
    }
}

/// A form's fields.
type Fields<'a> = Vec<(&'a str, &'a str)>;

fn location(resp: &Response) -> &str {
    resp.headers().get(LOCATION).unwrap().to_str().unwrap()
}

/// A dead job of the email queue, as a declined send leaves it.
async fn dead_email(app: &TestApp, error: &str) -> Uuid {
    insert(
        app,
        Row {
            queue: "email",
            job_type: "send_email",
            payload: json!({"notification_id": Uuid::new_v4()}),
            status: "dead",
            attempts: 1,
            last_error: Some(error),
            completed_ago_s: Some(30),
            ..Row::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_visitor_without_a_session_is_sent_to_the_login_page_and_its_actions_change_nothing() {
    let app = spawn_app().await;
    let dead = dead_email(&app, "declined card").await;
    let resp = app.get("/admin/jobs?state=dead", None).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&resp),
        "/admin/login?next=%2Fadmin%2Fjobs%3Fstate%3Ddead"
    );
    let resp = app
        .client
        .post(app.url(&format!("/admin/jobs/email/{dead}/retry")))
        .header("origin", &app.address)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/admin/login?next=%2Fadmin");
    assert_eq!(job_row(&app, dead).await.unwrap()["status"], "dead");
    // The login page itself, and its styles and script, are open.
    let login = app.get("/admin/login?next=/admin/jobs", None).await;
    assert_eq!(login.status(), StatusCode::OK);
    let body = login.text().await.unwrap();
    // (Values are HTML-escaped, `/` too.)
    assert!(
        body.contains(r#"name="next" value="&#x2f;admin&#x2f;jobs""#),
        "{body}"
    );
    for (path, kind) in [
        ("/admin/static/dashboard.js", "text/javascript"),
        ("/admin/static/dashboard.css", "text/css"),
    ] {
        let resp = app.get(path, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }
    // A login that would send the browser elsewhere goes to the dashboard instead.
    let outside = app.get("/admin/login?next=//evil.example/", None).await;
    let body = outside.text().await.unwrap();
    assert!(
        body.contains(r#"name="next" value="&#x2f;admin""#),
        "{body}"
    );
}

#[tokio::test]
async fn an_admin_signs_in_and_gets_a_strict_http_only_cookie_whose_token_is_stored_only_hashed() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let resp = try_sign_in(&app, &admin.email, &admin.password).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/admin");
    let cookie = session_cookie(resp.headers()).unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=86400",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no Secure outside production: {cookie}"
    );
    let token = cookie["orderly_admin=".len()..].split(';').next().unwrap();
    assert!(token.len() >= 43, "{token}");
    let rows = sql(
        &app,
        "SELECT token_hash, user_id,
                extract(epoch FROM expires_at - created_at)::float8 AS absolute_s,
                extract(epoch FROM idle_expires_at - created_at)::float8 AS idle_s
           FROM admin_sessions",
        vec![],
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["token_hash"],
        hex::encode(Sha256::digest(token.as_bytes()))
    );
    assert_eq!(rows[0]["user_id"], admin.id.to_string());
    assert_eq!(rows[0]["absolute_s"], 86400.0);
    assert_eq!(rows[0]["idle_s"], 28800.0);

    let dashboard = sign_in(&app, &admin).await;
    let resp = dashboard.get(&app, "/admin").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    let page = resp.text().await.unwrap();
    assert!(
        page.contains(&admin.email),
        "the page names who is signed in"
    );
    assert!(page.contains(r#"<tr id="queue-email">"#), "{page}");
    assert!(!page.contains("<script>"), "no inline script: {page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from elsewhere"
    );
}

#[tokio::test]
async fn in_production_the_session_cookie_is_also_secure() {
    let app = spawn_app_with(&[("APP_ENV", "production")]).await;
    let admin = app.admin().await;
    let resp = try_sign_in(&app, &admin.email, &admin.password).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(resp.headers()).unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn a_wrong_password_an_unknown_email_or_a_non_admin_gets_no_session() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let customer = app.register("customer").await;
    for (email, password) in [
        (admin.email.as_str(), "wrong horse battery"),
        ("nobody@example.com", "correct horse battery"),
    ] {
        let resp = try_sign_in(&app, email, password).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{email}");
        assert!(session_cookie(resp.headers()).is_none());
        let body = resp.text().await.unwrap();
        assert!(body.contains("Wrong e-mail address or password."), "{body}");
    }
    let resp = try_sign_in(&app, &customer.email, &customer.password).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(resp.headers()).is_none());
    assert!(resp.text().await.unwrap().contains("not an admin"));
    assert_eq!(app.count("admin_sessions").await, 0);

    // A session whose user is no longer an admin is refused at once.
    let dashboard = sign_in(&app, &admin).await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE users SET role = 'customer' WHERE id = '{}'",
            admin.id
        ))
        .await
        .unwrap();
    let resp = dashboard.get(&app, "/admin").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn the_login_limit_stops_guessing_on_the_dashboard_too() {
    let app = spawn_app_with(&[("LOGIN_MAX_FAILURES_PER_EMAIL", "2")]).await;
    let admin = app.admin().await;
    for _ in 0..2 {
        let resp = try_sign_in(&app, &admin.email, "wrong horse battery").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // Over the limit, even the right password waits.
    let resp = try_sign_in(&app, &admin.email, &admin.password).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0);
    assert!(session_cookie(resp.headers()).is_none());
    assert_eq!(app.count("admin_sessions").await, 0);
}

#[tokio::test]
async fn a_login_form_sent_from_another_site_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let resp = app
        .client
        .post(app.url("/admin/login"))
        .header("origin", "http://evil.example")
        .form(&[("email", &admin.email), ("password", &admin.password)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count("admin_sessions").await, 0);
}

#[tokio::test]
async fn logging_out_ends_the_session_in_the_database_and_in_the_browser() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dashboard = sign_in(&app, &admin).await;
    // Without its token, logging out is refused like any other action.
    let resp = dashboard
        .post(&app, "/admin/logout", Some(&app.address), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count("admin_sessions").await, 1);
    let resp = dashboard.act(&app, "/admin/logout").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/admin/login");
    let cookie = session_cookie(resp.headers()).unwrap();
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    assert_eq!(app.count("admin_sessions").await, 0);
    let resp = dashboard.get(&app, "/admin").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_idle_session_ends_and_activity_never_extends_one_past_its_absolute_expiry() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dashboard = sign_in(&app, &admin).await;
    app.db
        .execute_unprepared(
            "UPDATE admin_sessions SET idle_expires_at = now() + interval '10 seconds',
                                       expires_at = now() + interval '5 minutes'",
        )
        .await
        .unwrap();
    dashboard.page(&app, "/admin").await;
    let capped = sql(
        &app,
        "SELECT idle_expires_at = expires_at AS capped FROM admin_sessions",
        vec![],
    )
    .await;
    assert_eq!(
        capped[0]["capped"], true,
        "activity extends it up to the absolute expiry"
    );

    app.db
        .execute_unprepared(
            "UPDATE admin_sessions SET idle_expires_at = now() - interval '1 second'",
        )
        .await
        .unwrap();
    let resp = dashboard.get(&app, "/admin").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(location(&resp).starts_with("/admin/login"));
}

#[tokio::test]
async fn the_auto_refresh_gets_only_the_live_part_and_does_not_keep_the_session_alive() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dashboard = sign_in(&app, &admin).await;
    app.db
        .execute_unprepared("UPDATE admin_sessions SET idle_expires_at = now() + interval '1 hour'")
        .await
        .unwrap();
    let idle = || async {
        sql(&app, "SELECT idle_expires_at FROM admin_sessions", vec![]).await[0]["idle_expires_at"]
            .clone()
    };
    let before = idle().await;
    let resp = app
        .client
        .get(app.url("/admin"))
        .header("cookie", format!("orderly_admin={}", dashboard.token))
        .header("x-orderly-refresh", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let fragment = resp.text().await.unwrap();
    assert!(
        !fragment.contains("<html"),
        "only the live part: {fragment}"
    );
    assert!(fragment.contains(r#"<tr id="queue-email">"#), "{fragment}");
    assert!(
        fragment.contains(r#"id="sample""#),
        "the chart's sample: {fragment}"
    );
    assert_eq!(idle().await, before, "a refresh is not activity");
    // A page the admin asks for is.
    dashboard.page(&app, "/admin").await;
    assert_ne!(idle().await, before);
}

#[tokio::test]
async fn an_action_without_the_csrf_token_with_a_wrong_one_or_from_another_origin_is_refused_and_changes_nothing()
 {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dashboard = sign_in(&app, &admin).await;
    let dead = dead_email(&app, "declined card").await;
    let retry = format!("/admin/jobs/email/{dead}/retry");
    let ours = app.address.clone();
    let other_session_token = {
        let other = sign_in(&app, &admin).await;
        other.csrf
    };
    let forged: Vec<(&str, Option<&str>, Fields)> = vec![
        ("no token", Some(&ours), vec![]),
        (
            "a wrong token",
            Some(&ours),
            vec![("csrf", "0".repeat(64).leak())],
        ),
        (
            "another session's token",
            Some(&ours),
            vec![("csrf", other_session_token.as_str())],
        ),
        (
            "another origin",
            Some("http://evil.example"),
            vec![("csrf", dashboard.csrf.as_str())],
        ),
        ("no origin", None, vec![("csrf", dashboard.csrf.as_str())]),
    ];
    for (what, origin, fields) in &forged {
        for path in [
            retry.as_str(),
            "/admin/queues/email/pause",
            "/admin/queues/email/retry-dead",
            "/admin/schedules/sweep/run",
        ] {
            let resp = dashboard.post(&app, path, *origin, fields).await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{what}: {path}");
            assert!(
                resp.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html"),
                "{what}: an HTML page"
            );
        }
    }
    assert_eq!(job_row(&app, dead).await.unwrap()["status"], "dead");
    assert_eq!(app.count("queue_pauses").await, 0);
    assert_eq!(app.count("outbox").await, 1, "no job enqueued");
    assert!(audit(&app).await.is_empty());
    // The same request with the token, from the dashboard, goes through.
    let resp = dashboard.act(&app, &retry).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(job_row(&app, dead).await.unwrap()["status"], "pending");
}

#[tokio::test]
async fn retrying_a_dead_job_from_its_page_puts_it_back_and_is_audited_as_the_signed_in_admin() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dashboard = sign_in(&app, &admin).await;
    let dead = dead_email(&app, "declined card").await;
    let page = dashboard
        .page(&app, &format!("/admin/jobs/email/{dead}"))
        .await;
    assert!(page.contains(&format!(r#"action="/admin/jobs/email/{dead}/retry""#)));
    assert!(
        page.contains("data-confirm="),
        "the page asks before retrying"
    );
    let resp = dashboard
        .act(&app, &format!("/admin/jobs/email/{dead}/retry"))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&resp),
        format!("/admin/jobs/email/{dead}?notice=retried")
    );
    let row = job_row(&app, dead).await.unwrap();
    assert_eq!(row["status"], "pending");
    assert_eq!(row["attempts"], 1);
    let audit = audit(&app).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["action"], "job.retried");
    assert_eq!(audit[0]["actor_id"], admin.id.to_string());
    assert_eq!(audit[0]["entity_id"], dead.to_string());
    assert_eq!(audit[0]["request_id"], "req-dashboard-1");
    let page = dashboard
        .page(&app, &format!("/admin/jobs/email/{dead}?notice=retried"))
        .await;
    assert!(page.contains("The job was put back"), "{page}");
    // Retrying it again is a conflict, shown as a page, and changes nothing.
    let resp = dashboard
        .act(&app, &format!("/admin/jobs/email/{dead}/retry"))
        .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(resp.text().await.unwrap().contains("only a dead job"));
    assert_eq!(app.count("audit_log").await, 1);
}

#[tokio::test]
async fn discarding_a_job_from_the_dashboard_deletes_it_and_is_audited() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dashboard = sign_in(&app, &admin).await;
    let dead = dead_email(&app, "invalid address").await;
    let resp = dashboard
        .act(&app, &format!("/admin/jobs/email/{dead}/discard"))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/admin/jobs?queue=email&notice=discarded");
    assert!(job_row(&app, dead).await.is_none());
    let audit = audit(&app).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["action"], "job.discarded");
    assert_eq!(audit[0]["actor_id"], admin.id.to_string());
    // It is gone: its page is a 404 page.
    let resp = dashboard
        .get(&app, &format!("/admin/jobs/email/{dead}"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn pausing_resuming_and_retrying_a_queues_dead_jobs_from_the_dashboard_are_recorded_and_audited()
 {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dashboard = sign_in(&app, &admin).await;
    let resp = dashboard.act(&app, "/admin/queues/email/pause").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/admin?notice=paused");
    let pauses = sql(&app, "SELECT queue, paused_by FROM queue_pauses", vec![]).await;
    assert_eq!(pauses, [json!({"queue": "email", "paused_by": admin.id})]);
    let page = dashboard.page(&app, "/admin").await;
    let email_row = page.split(r#"<tr id="queue-email">"#).nth(1).unwrap();
    let email_row = email_row.split("</tr>").next().unwrap();
    assert!(email_row.contains(r#"data-paused="true""#), "{email_row}");
    assert!(
        email_row.contains("/admin/queues/email/resume"),
        "{email_row}"
    );

    let resp = dashboard.act(&app, "/admin/queues/email/resume").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.count("queue_pauses").await, 0);

    let dead = [dead_email(&app, "one").await, dead_email(&app, "two").await];
    let other = insert(
        &app,
        Row {
            queue: "sms",
            job_type: "send_sms",
            status: "dead",
            attempts: 1,
            last_error: Some("invalid number"),
            completed_ago_s: Some(5),
            ..Row::default()
        },
    )
    .await;
    let resp = dashboard.act(&app, "/admin/queues/email/retry-dead").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/admin?notice=bulk-retried");
    for id in dead {
        assert_eq!(job_row(&app, id).await.unwrap()["status"], "pending");
    }
    assert_eq!(
        job_row(&app, other).await.unwrap()["status"],
        "dead",
        "another queue's"
    );
    let actions: Vec<Value> = audit(&app)
        .await
        .iter()
        .map(|a| json!([a["action"], a["entity_id"], a["actor_id"]]))
        .collect();
    let me = admin.id.to_string();
    assert_eq!(
        actions,
        [
            json!(["queue.paused", "email", me]),
            json!(["queue.resumed", "email", me]),
            json!(["jobs.retried", "email", me]),
        ]
    );
    // An unknown queue is a 404 page, and nothing is written.
    let resp = dashboard.act(&app, "/admin/queues/nope/pause").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.count("audit_log").await, 3);
}

#[tokio::test]
async fn a_jobs_page_explains_where_it_stands_in_a_sentence() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dashboard = sign_in(&app, &admin).await;
    app.db
        .execute_unprepared(
            "INSERT INTO workers (name, host, pid, queues, concurrency)
             VALUES ('w-7', 'host-a', 7, '{email}', '{4}');
             INSERT INTO workers (name, host, pid, queues, concurrency, heartbeat_at)
             VALUES ('w-3', 'host-b', 3, '{email}', '{4}', now() - interval '20 seconds')",
        )
        .await
        .unwrap();
    let email = |status, attempts, last_error, run_in_s, locked_by| Row {
        queue: "email",
        job_type: "send_email",
        status,
        attempts,
        last_error,
        run_in_s,
        locked_by,
        ..Row::default()
    };
    let first = insert(&app, email("pending", 0, None, -300, None)).await;
    let second = insert(&app, email("pending", 0, None, -240, None)).await;
    let waiting = insert(
        &app,
        email("pending", 3, Some("SMTP 451 try later"), 120, None),
    )
    .await;
    let running = insert(&app, email("running", 1, None, -1, Some("w-7"))).await;
    let stalled = insert(&app, email("running", 1, None, -1, Some("w-3"))).await;
    let dead = dead_email(&app, "declined card").await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE outbox SET request_id = 'req-booking-42' WHERE id = '{dead}'"
        ))
        .await
        .unwrap();

    let sentence = |page: String| {
        let re = regex::Regex::new(r#"(?s)<p class="explain" id="explanation">(.*?)</p>"#).unwrap();
        re.captures(&page).expect("an explanation")[1].to_owned()
    };
    let explain = |id: Uuid| {
        let path = format!("/admin/jobs/email/{id}");
        let dashboard = &dashboard;
        let app = &app;
        async move { sentence(dashboard.page(app, &path).await) }
    };
    // w-3 is silent, but within the 30 s in which a worker still counts as live.
    let first_line = explain(first).await;
    assert_eq!(
        first_line,
        "queued 5 min, first in line; the email queue has 2 workers (up to 8 jobs at once)"
    );
    let second_line = explain(second).await;
    assert!(
        second_line.starts_with("queued 4 min behind 1 job;"),
        "{second_line}"
    );
    let retry_line = explain(waiting).await;
    assert!(
        retry_line.starts_with("retry 4 of 20 at ")
            && retry_line.ends_with("after `SMTP 451 try later`"),
        "{retry_line}"
    );
    let running_line = explain(running).await;
    assert!(
        running_line.starts_with("running on worker w-7 since ")
            && regex::Regex::new(r", heartbeat \d+ s ago$")
                .unwrap()
                .is_match(&running_line),
        "{running_line}"
    );
    let stalled_line = explain(stalled).await;
    // Silent for 20 s (and counting), its run's lease (30 s from the start) not yet out.
    assert!(
        regex::Regex::new(
            r"^worker w-3 stopped heart-beating 2\d s ago; the job is handed to another worker in \d+ s$"
        )
        .unwrap()
        .is_match(&stalled_line),
        "{stalled_line}"
    );
    let dead_page = dashboard
        .page(&app, &format!("/admin/jobs/email/{dead}"))
        .await;
    assert!(
        dead_page.contains("req-booking-42"),
        "the request id of the booking"
    );
    assert!(sentence(dead_page).starts_with("dead: declined card (given up after 1 attempt at "),);

    // The list filters by state and links each job's page.
    let list = dashboard
        .page(&app, "/admin/jobs?queue=email&state=running")
        .await;
    assert!(list.contains(&format!("/admin/jobs/email/{running}")));
    assert!(list.contains(&format!("/admin/jobs/email/{stalled}")));
    assert!(!list.contains(&format!("/admin/jobs/email/{dead}")));
    assert!(list.contains("1–2 of 2"), "{list}");
}

#[tokio::test]
async fn filters_that_name_nothing_and_pages_that_do_not_exist_answer_with_pages_not_500s() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dashboard = sign_in(&app, &admin).await;
    for (path, status) in [
        (
            "/admin/jobs?state=sleeping",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/admin/jobs?booking=not-a-uuid",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/admin/jobs?page=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("/admin/jobs/email/not-a-uuid", StatusCode::NOT_FOUND),
        (
            &*format!("/admin/jobs/nope/{}", Uuid::now_v7()),
            StatusCode::NOT_FOUND,
        ),
        (
            &*format!("/admin/jobs/email/{}", Uuid::now_v7()),
            StatusCode::NOT_FOUND,
        ),
        ("/admin/no-such-page", StatusCode::NOT_FOUND),
    ] {
        let resp = dashboard.get(&app, path).await;
        assert_eq!(resp.status(), status, "{path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(
            resp.text().await.unwrap().contains("id=\"error-message\""),
            "{path}"
        );
    }
}

#[tokio::test]
async fn run_now_enqueues_the_schedules_job_and_is_audited() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dashboard = sign_in(&app, &admin).await;
    let page = dashboard.page(&app, "/admin/schedules").await;
    for entry in [
        "daily_report",
        "reminders",
        "sweep",
        "retention",
        "reconcile_payments",
    ] {
        assert!(
            page.contains(&format!(r#"<tr id="schedule-{entry}">"#)),
            "{entry}"
        );
    }
    assert!(page.contains("No scheduler replica leads"), "{page}");
    let resp = dashboard
        .post(
            &app,
            "/admin/schedules/daily_report/run",
            Some(&app.address),
            &[("csrf", &dashboard.csrf), ("date", "2026-11-20")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/admin/schedules?notice=enqueued");
    let jobs = sql(
        &app,
        "SELECT job_type, payload ->> 'date' AS date FROM outbox",
        vec![],
    )
    .await;
    assert_eq!(
        jobs,
        [json!({"job_type": "daily_report", "date": "2026-11-20"})]
    );
    let audit = audit(&app).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["action"], "schedule.run_now");
    assert_eq!(audit[0]["entity_id"], "daily_report");
    assert_eq!(audit[0]["actor_id"], admin.id.to_string());
    // A date for an entry that takes none is a form error, and enqueues nothing.
    let resp = dashboard
        .post(
            &app,
            "/admin/schedules/sweep/run",
            Some(&app.address),
            &[("csrf", &dashboard.csrf), ("date", "2026-11-20")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("outbox").await, 1);
}

#[tokio::test]
async fn the_money_page_lists_repairs_and_disputes_with_links_to_the_bookings_jobs() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let dashboard = sign_in(&app, &admin).await;
    let empty = dashboard.page(&app, "/admin/money").await;
    assert!(
        empty.contains("Nothing has disagreed with the provider."),
        "{empty}"
    );
    assert!(empty.contains("No charge is disputed."));

    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app.create_listing(&provider, json!({"capacity": 2})).await;
    let booking: Value = app
        .post_json(
            "/api/v1/bookings",
            &json!({"listing_id": listing["id"], "quantity": 1}),
            Some(&customer.access),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = booking["id"].as_str().unwrap();
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO payment_repairs (id, booking_id, mismatch, action)
             VALUES (gen_random_uuid(), '{id}', 'refunded_at_provider', 'recorded the refund');
             UPDATE payments SET disputed_at = now(), dispute_reason = 'fraudulent'
              WHERE booking_id = '{id}'"
        ))
        .await
        .unwrap();
    let page = dashboard.page(&app, "/admin/money").await;
    assert!(page.contains("refunded_at_provider"), "{page}");
    assert!(page.contains("recorded the refund"));
    assert!(page.contains("fraudulent"));
    assert_eq!(
        page.matches(&format!(r#"href="/admin/jobs?booking={id}""#))
            .count(),
        2
    );
}
