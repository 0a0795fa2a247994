//! `GET /admin/jobs` (filtered by queue, state, type or booking; newest first, paginated),
//! `GET /admin/jobs/{queue}/{id}` (one job: the sentence that explains where it stands,
//! its payload, every failed attempt), and retrying or discarding a job.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use anyhow::Context as _;
use orderly_admin::explain::{self, Limits};
use orderly_admin::jobs::{self as admin, JobFilter, JobState, JobView, LIST_CAP};
use orderly_jobs::outbox::Window;
use orderly_jobs::{JobKind, Queue};
use serde::Serialize;
use uuid::Uuid;

use super::error::DashboardError;
use super::session::Admin;
use super::views::{notice, now_text, page, see_other};
use super::{REFRESH_MS, csrf, queue_of};
use crate::state::AppState;

/// Jobs per page.
const PAGE_SIZE: u64 = 50;

/// The list's filters as typed in the form (echoed back into it).
#[derive(Debug, Default, Serialize)]
struct Filters {
    queue: String,
    state: String,
    r#type: String,
    booking: String,
}

impl Filters {
    /// The filters of a query string; an empty field is no filter.
    fn of(query: &HashMap<String, String>) -> Self {
        let get = |k: &str| {
            query
                .get(k)
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            queue: get("queue"),
            state: get("state"),
            r#type: get("type"),
            booking: get("booking"),
        }
    }

    /// As the shared list's filter; a value that names nothing is `422`.
    fn parse(&self) -> Result<JobFilter, DashboardError> {
        let invalid = |what: &str, value: &str| {
            DashboardError::Invalid(format!("there is no {what} `{value}` to filter by"))
        };
        let queue = match self.queue.as_str() {
            "" => None,
            q => Some(Queue::parse(q).ok_or_else(|| invalid("queue", q))?),
        };
        let state = match self.state.as_str() {
            "" => None,
            s => Some(JobState::parse(s).ok_or_else(|| invalid("state", s))?),
        };
        let job_type = match self.r#type.as_str() {
            "" => None,
            t => Some(
                JobKind::parse(t)
                    .ok_or_else(|| invalid("job type", t))?
                    .name()
                    .to_owned(),
            ),
        };
        let booking_id = match self.booking.as_str() {
            "" => None,
            b => Some(Uuid::parse_str(b).map_err(|_| {
                DashboardError::Invalid(format!("`{b}` is not a booking id (a UUID)"))
            })?),
        };
        Ok(JobFilter {
            queue,
            state,
            job_type,
            booking_id,
        })
    }

    /// The list's URL with these filters, at `page`.
    fn url(&self, page: u64) -> String {
        let mut pairs: Vec<(&str, String)> = [
            ("queue", &self.queue),
            ("state", &self.state),
            ("type", &self.r#type),
            ("booking", &self.booking),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.clone()))
        .collect();
        if page > 1 {
            pairs.push(("page", page.to_string()));
        }
        match serde_urlencoded::to_string(&pairs) {
            Ok(query) if !query.is_empty() => format!("/admin/jobs?{query}"),
            _ => "/admin/jobs".to_owned(),
        }
    }
}

/// The query string as a map (a `422` page when it cannot be read).
fn query_map(req: &HttpRequest) -> Result<HashMap<String, String>, DashboardError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| DashboardError::Invalid(format!("the address cannot be read: {e}")))
}

/// `GET /admin/jobs`.
pub async fn list(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashboardError> {
    let query = query_map(&req)?;
    let filters = Filters::of(&query);
    let filter = filters.parse()?;
    let page_no = match query.get("page").map(|p| p.trim()) {
        None | Some("") => 1,
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| DashboardError::Invalid(format!("`{p}` is not a page number")))?,
    };
    let offset = (page_no - 1).saturating_mul(PAGE_SIZE);
    let (count, jobs) = admin::list(&state.db, &filter, offset, PAGE_SIZE).await?;
    let shown_to = offset + jobs.len() as u64;
    let has_next = shown_to < count && shown_to < LIST_CAP;
    let shown_from = if shown_to > offset { offset + 1 } else { 0 };
    Ok(page(
        &req,
        "jobs",
        serde_json::json!({ "admin": admin.view(), "nav": "jobs", "title": "Jobs", "notice": notice(query.get("notice").map(String::as_str)), "refresh_ms": REFRESH_MS, "drawn_at": now_text(), "filters": &filters, "queues": Queue::ALL.iter().map(|q| q.as_str()).collect::<Vec<_>>(), "states": JobState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(), "types": JobKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>(), "jobs": jobs, "count": count, "capped": count >= LIST_CAP, "shown_from": shown_from, "shown_to": shown_to, "prev_url": (page_no > 1).then(|| filters.url(page_no - 1)), "next_url": has_next.then(|| filters.url(page_no + 1)) }),
    )?)
}

/// The job a path names (`404` when the queue or id names none).
fn job_path(path: &(String, String)) -> Result<(Queue, Uuid), DashboardError> {
    let queue = queue_of(&path.0)?;
    let id = Uuid::parse_str(&path.1).map_err(|_| {
        DashboardError::NotFound(format!("no such job in the {} queue", queue.as_str()))
    })?;
    Ok((queue, id))
}

/// What the sentence depends on, from the settings the worker runs with.
fn limits(state: &AppState, job: &JobView) -> Limits {
    let worker = &state.settings.worker;
    Limits {
        max_attempts: explain::max_attempts(&job.job_type, worker.max_attempts),
        // Three missed heartbeats: a busy database may delay one, hardly three.
        silent_after: worker.heartbeat.saturating_mul(3),
        reconcile_every: worker.reconcile_interval,
    }
}

/// One failed attempt as the page shows it.
#[derive(Debug, Serialize)]
struct AttemptRow<'a> {
    #[serde(flatten)]
    attempt: &'a admin::AttemptView,
    took_s: Option<f64>,
}

/// `GET /admin/jobs/{queue}/{id}`.
pub async fn show(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, DashboardError> {
    let (queue, id) = job_path(&path)?;
    let job = admin::find(&state.db, queue, id).await?.ok_or_else(|| {
        DashboardError::NotFound(format!("no such job in the {} queue", queue.as_str()))
    })?;
    let around = explain::surroundings(&state.db, &job, Window::default().live_within).await?;
    let limits = limits(&state, &job);
    let sentence = explain::explain(&job, &around, &limits);
    let payload = serde_json::to_string_pretty(&job.payload).context("showing the payload")?;
    let attempts: Vec<AttemptRow<'_>> = job
        .failed_attempts
        .iter()
        .map(|a| AttemptRow {
            attempt: a,
            took_s: a
                .started_at
                .map(|s| (a.finished_at - s).num_milliseconds() as f64 / 1000.0),
        })
        .collect();
    let query = query_map(&req)?;
    Ok(page(
        &req,
        "job",
        serde_json::json!({ "admin": admin.view(), "nav": "jobs", "title": format!("{} job {}", job.job_type, job.id), "notice": notice(query.get("notice").map(String::as_str)), "refresh_ms": REFRESH_MS, "drawn_at": now_text(), "sentence": sentence, "max_attempts": limits.max_attempts, "can_retry": matches!(job.state, JobState::Dead | JobState::Failed), "can_discard": matches!(job.status.as_str(), "pending" | "enqueued" | "dead"), "payload": payload, "attempts": attempts, "job": job }),
    )?)
}

/// `POST /admin/jobs/{queue}/{id}/retry`: a dead job, or one waiting for its retry, runs
/// again now. Atomic against a worker ending it at the same moment; audited.
pub async fn retry(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    let _: serde::de::IgnoredAny = csrf::verified_form(&admin, &req, &body)?;
    let (queue, id) = job_path(&path)?;
    admin::retry(&state.db, queue, id, admin.actor()).await?;
    Ok(see_other(&format!(
        "/admin/jobs/{}/{id}?notice=retried",
        queue.as_str()
    )))
}

/// `POST /admin/jobs/{queue}/{id}/discard`: the job is deleted unless it is running or
/// done. Audited (with its payload).
pub async fn discard(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    let _: serde::de::IgnoredAny = csrf::verified_form(&admin, &req, &body)?;
    let (queue, id) = job_path(&path)?;
    admin::discard(&state.db, queue, id, admin.actor()).await?;
    Ok(see_other(&format!(
        "/admin/jobs?queue={}&notice=discarded",
        queue.as_str()
    )))
}
