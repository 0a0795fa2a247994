//! `/admin`: the operations dashboard, server-rendered HTML over the same shared functions
//! as the admin API (counts, jobs, retry, discard, pause, schedules, money), behind an admin login
//! with a session cookie and CSRF checks. Not part of the JSON API or its OpenAPI document.
//!
//! Every page is whole without JavaScript; the one script of our own
//! (`/admin/static/dashboard.js`) asks before an action, swaps in each page's live part
//! every few seconds, and draws the throughput chart. Nothing is fetched from elsewhere.

pub mod assets;
pub mod csrf;
pub mod error;
pub mod jobs;
pub mod login;
pub mod money;
pub mod queues;
pub mod schedules;
pub mod session;
pub mod views;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, web};

/// The login page.
pub const LOGIN: &str = "/admin/login";

/// How often a page's live part is refreshed, in milliseconds.
pub const REFRESH_MS: u32 = 5000;

/// Whether `path` is one of the dashboard's own pages: the only places a login may send
/// the browser back to (no other site, no `//host` path).
pub fn is_dashboard_path(path: &str) -> bool {
    (path == "/admin" || path.starts_with("/admin/") || path.starts_with("/admin?"))
        && !path.contains("//")
        && !path.contains('\\')
}

/// The queue a path names (`404` when there is none).
pub fn queue_of(name: &str) -> Result<orderly_jobs::Queue, error::DashboardError> {
    orderly_jobs::Queue::parse(name)
        .ok_or_else(|| error::DashboardError::NotFound(format!("there is no queue `{name}`")))
}

/// The headers of every dashboard answer: our own script and styles only, never in a
/// frame, never cached (pages show operational data and carry the CSRF token).
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        ))
        .add((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .add((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .add((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .add((
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}

/// A page under `/admin` that does not exist.
async fn not_found(req: HttpRequest) -> Result<HttpResponse, error::DashboardError> {
    Err(error::DashboardError::NotFound(format!(
        "the dashboard has no page {}",
        req.path()
    )))
}

/// Mounts the dashboard's routes (`App::configure`), beside the API's.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(security_headers())
            .route("", web::get().to(queues::show))
            .route("/", web::get().to(|| async { views::see_other("/admin") }))
            .route("/login", web::get().to(login::form))
            .route("/login", web::post().to(login::submit))
            .route("/logout", web::post().to(login::logout))
            .route("/static/dashboard.js", web::get().to(assets::script))
            .route("/static/dashboard.css", web::get().to(assets::styles))
            .route("/queues/{queue}/pause", web::post().to(queues::pause))
            .route("/queues/{queue}/resume", web::post().to(queues::resume))
            .route(
                "/queues/{queue}/retry-dead",
                web::post().to(queues::retry_dead),
            )
            .route("/jobs", web::get().to(jobs::list))
            .route("/jobs/{queue}/{id}", web::get().to(jobs::show))
            .route("/jobs/{queue}/{id}/retry", web::post().to(jobs::retry))
            .route("/jobs/{queue}/{id}/discard", web::post().to(jobs::discard))
            .route("/money", web::get().to(money::show))
            .route("/schedules", web::get().to(schedules::show))
            .route("/schedules/{entry}/run", web::post().to(schedules::run_now))
            .default_service(web::to(not_found)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_places_to_return_to() {
        assert!(is_dashboard_path("/admin"));
        assert!(is_dashboard_path("/admin/jobs?state=dead"));
        assert!(is_dashboard_path("/admin?x=1"));
        assert!(!is_dashboard_path("/administrator"));
        assert!(!is_dashboard_path("//evil.example/admin"));
        assert!(!is_dashboard_path("/admin//evil.example"));
        assert!(!is_dashboard_path("https://evil.example/admin"));
        assert!(!is_dashboard_path("/admin/\\evil"));
    }
}
