//! The dashboard's pages: templates compiled into the binary (`api/templates/admin`, HTML
//! escaped by default), rendered into `text/html` answers.

use std::sync::{Arc, LazyLock};

use anyhow::Context;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

/// Every template, by name, embedded at build time: the API needs no files at run time.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../templates/admin/layout.html"),
    ),
    (
        "login.html",
        include_str!("../../templates/admin/login.html"),
    ),
    (
        "error.html",
        include_str!("../../templates/admin/error.html"),
    ),
    (
        "queues.html",
        include_str!("../../templates/admin/queues.html"),
    ),
    (
        "queues_live.html",
        include_str!("../../templates/admin/queues_live.html"),
    ),
    ("jobs.html", include_str!("../../templates/admin/jobs.html")),
    (
        "jobs_live.html",
        include_str!("../../templates/admin/jobs_live.html"),
    ),
    ("job.html", include_str!("../../templates/admin/job.html")),
    (
        "job_live.html",
        include_str!("../../templates/admin/job_live.html"),
    ),
    (
        "money.html",
        include_str!("../../templates/admin/money.html"),
    ),
    (
        "money_live.html",
        include_str!("../../templates/admin/money_live.html"),
    ),
    (
        "schedules.html",
        include_str!("../../templates/admin/schedules.html"),
    ),
    (
        "schedules_live.html",
        include_str!("../../templates/admin/schedules_live.html"),
    ),
];

/// The compiled templates: built once from constants, like a table; a template that does
/// not compile fails this module's tests (and every render, as a 500 page).
static ENVIRONMENT: LazyLock<Result<Environment<'static>, Arc<minijinja::Error>>> =
    LazyLock::new(|| {
        let mut env = Environment::new();
        // Printing a misspelt variable is an error, not an empty cell; `if` may test one.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.add_filter("when", when);
        env.add_filter("ago", ago);
        env.add_filter("short", |text: String| {
            orderly_admin::explain::short(&text).to_owned()
        });
        for (name, source) in TEMPLATES {
            env.add_template(name, source).map_err(Arc::new)?;
        }
        Ok(env)
    });

/// `2026-12-11 12:01:03` from an RFC 3339 timestamp (as `chrono` serialises one); the
/// value itself when it is not one, and nothing for none.
fn when(value: Value) -> String {
    if value.is_none() || value.is_undefined() {
        return String::new();
    }
    let text = value.to_string();
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.to_utc().format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or(text)
}

/// A number of seconds as the sentences say it (`25 s`, `4 min`).
fn ago(value: Value) -> String {
    match f64::try_from(value) {
        Ok(secs) => orderly_admin::explain::span(secs),
        Err(_) => String::new(),
    }
}

/// Renders template `name` with `ctx`.
pub fn render(name: &str, ctx: impl Serialize) -> anyhow::Result<String> {
    let env = ENVIRONMENT
        .as_ref()
        .map_err(|e| anyhow::Error::new(Arc::clone(e)).context("the dashboard templates"))?;
    let page = env
        .get_template(name)
        .and_then(|t| t.render(Value::from(Serde(&ctx))))
        .with_context(|| format!("rendering {name}"))?;
    Ok(page)
}

/// An HTML answer.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(body)
}

/// The request header the page's auto-refresh sends: such a request renders only the
/// page's live part and does not extend the session.
pub const REFRESH_HEADER: &str = "x-orderly-refresh";

/// Page `name` (`name.html`), or only its live part (`name_live.html`) when the page's
/// auto-refresh asks.
pub fn page(req: &HttpRequest, name: &str, ctx: impl Serialize) -> anyhow::Result<HttpResponse> {
    let live = req.headers().contains_key(REFRESH_HEADER);
    let template = if live {
        format!("{name}_live.html")
    } else {
        format!("{name}.html")
    };
    Ok(html(StatusCode::OK, render(&template, ctx)?))
}

/// A `303 See Other` to `location` (after a form, or to the login page).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// What the layout shows of the signed-in admin: the logout form needs the CSRF token.
#[derive(Debug, Serialize)]
pub struct AdminView<'a> {
    /// Their e-mail address.
    pub email: &'a str,
    /// This session's CSRF token, for the forms.
    pub csrf: &'a str,
}

/// `?notice=` on a page an action redirected to.
#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

impl NoticeQuery {
    /// The notice's text (see [`notice`]).
    pub fn text(&self) -> Option<&'static str> {
        notice(self.notice.as_deref())
    }
}

/// A short notice shown once after an action (`?notice=retried`): a fixed text per key,
/// so nothing from the URL is echoed into the page.
pub fn notice(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "retried" => "The job was put back: it runs again now.",
        "discarded" => "The job was discarded.",
        "bulk-retried" => "The queue's dead jobs were put back.",
        "bulk-retried-more" => {
            "Dead jobs were put back; more are left (past the 1000 one action takes): retry again."
        }
        "paused" => "The queue is paused: workers take none of its jobs until it is resumed.",
        "resumed" => "The queue is resumed.",
        "enqueued" => "The entry's job was enqueued.",
        "already-enqueued" => "That job was already enqueued; nothing was added.",
        _ => return None,
    })
}

/// When it happened, for pages that show the time they were drawn.
pub fn now_text() -> String {
    Utc::now().format("%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let env = ENVIRONMENT.as_ref().unwrap();
        for (name, _) in TEMPLATES {
            env.get_template(name).unwrap();
        }
    }

    #[test]
    fn values_are_html_escaped() {
        let page = render(
            "error.html",
            serde_json::json!({ "title": "t", "message": "<script>alert(1)</script>", "status": 404, "admin": serde_json::Value::Null }),
        )
        .unwrap();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{page}"
        );
    }

    #[test]
    fn timestamps_read_as_utc_wall_clock() {
        assert_eq!(
            when(Value::from("2026-12-11T12:01:03.123456Z")),
            "2026-12-11 12:01:03"
        );
        assert_eq!(when(Value::from(())), "");
        assert_eq!(ago(Value::from(25.2)), "25 s");
    }
}
