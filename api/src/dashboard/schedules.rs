//! `GET /admin/schedules`: the scheduler's table as it runs (expression, time zone, last
//! and next run, the leading replica), and "run now", which enqueues an entry's job the
//! way `orderly-scheduler run-now` does, audited.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use orderly_db::audit_log;
use orderly_db::sql;
use orderly_db::sql::stmt;
use orderly_jobs::schedules::{self, Entry, Table};
use orderly_jobs::{outbox, wake};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::{Deserialize, Serialize};

use super::error::DashboardError;
use super::session::Admin;
use super::views::{NoticeQuery, now_text, page, see_other};
use super::{REFRESH_MS, csrf};
use crate::state::AppState;

/// One entry of the table as the page shows it.
#[derive(Debug, Serialize)]
struct EntryRow {
    name: &'static str,
    about: &'static str,
    expression: String,
    timezone: String,
    next_run: Option<DateTime<Utc>>,
    /// Its next run on the entry's own clock.
    next_run_local: Option<String>,
    last_run: Option<LastRun>,
    /// Whether "run now" takes a date (the report's day).
    takes_date: bool,
}

/// An entry's latest tick that fired.
#[derive(Debug, Serialize)]
struct LastRun {
    scheduled_for: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    status: &'static str,
    error: Option<String>,
    leader: String,
    job: Option<String>,
}

/// `GET /admin/schedules`.
pub async fn show(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, DashboardError> {
    let mut last = schedules::last_runs(&state.db).await?;
    let leader = schedules::leader(&state.db).await?;
    let now = db_now(&state.db).await?;
    let table = Table::from_settings(&state.settings);
    let entries: Vec<EntryRow> = table
        .entries()
        .into_iter()
        .map(|s| {
            let next_run = s.next_after(now);
            EntryRow {
                name: s.entry.name(),
                about: s.entry.about(),
                expression: s.expression.source().to_owned(),
                timezone: s.tz.name().to_owned(),
                next_run,
                next_run_local: next_run.map(|t| {
                    t.with_timezone(&s.tz)
                        .format("%Y-%m-%d %H:%M:%S %Z")
                        .to_string()
                }),
                last_run: last.remove(&s.entry).map(|run| LastRun {
                    scheduled_for: run.scheduled_for.to_utc(),
                    finished_at: run.finished_at.map(|t| t.to_utc()),
                    status: run.status.as_str(),
                    error: run.error,
                    leader: run.leader,
                    job: run.task_id,
                }),
                takes_date: s.entry == Entry::DailyReport,
            }
        })
        .collect();
    let leader = leader.map(|l| {
        serde_json::json!({ "holder": l.holder, "token": l.token, "lease_until": l.lease_until })
    });
    Ok(page(
        &req,
        "schedules",
        serde_json::json!({ "admin": admin.view(), "nav": "schedules", "title": "Schedules", "notice": query.text(), "refresh_ms": REFRESH_MS, "drawn_at": now_text(), "entries": entries, "leader": leader }),
    )?)
}

sql! {
    /// PostgreSQL's clock.
    DB_NOW = "SELECT now() AS now";
}

/// PostgreSQL's clock: the one the scheduler's ticks are read by.
async fn db_now(db: &impl ConnectionTrait) -> Result<DateTime<Utc>, DashboardError> {
    let row = db
        .query_one_raw(stmt(&DB_NOW, []))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no clock from PostgreSQL"))?;
    Ok(row.try_get("", "now")?)
}

/// The "run now" form: the report's day, for the report only (yesterday by default).
#[derive(Debug, Deserialize)]
struct RunNow {
    #[serde(default)]
    date: String,
}

/// `POST /admin/schedules/{entry}/run`: the entry's job, enqueued now in one transaction
/// with its audit row (`schedule.run_now`); a report is recomputed even if it was made.
pub async fn run_now(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    let form: RunNow = csrf::verified_form(&admin, &req, &body)?;
    let entry = Entry::parse(&path)
        .ok_or_else(|| DashboardError::NotFound(format!("there is no schedule `{path}`")))?;
    let date = match form.date.trim() {
        "" => None,
        _ if entry != Entry::DailyReport => {
            return Err(DashboardError::Invalid(
                "only the daily report takes a date".into(),
            ));
        }
        text => Some(NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            DashboardError::Invalid(format!("`{text}` is not a date (YYYY-MM-DD)"))
        })?),
    };
    let table = Table::from_settings(&state.settings);
    let txn = state.db.begin().await?;
    let now = db_now(&txn).await?;
    let job = table.job_on_demand(entry, now, date)?;
    let new = outbox::enqueue_many(&txn, std::slice::from_ref(&job.job)).await? == 1;
    audit_log::record(
        &txn,
        admin.actor(),
        "schedule.run_now",
        "schedule",
        entry.name(),
        serde_json::json!({ "job": job.task_id, "enqueued": new }),
    )
    .await?;
    wake::commit(&state.db, txn).await?;
    tracing::info!(schedule = entry.name(), job.key = %job.task_id, enqueued = new, user.id = %admin.user_id, "schedule run now by an operator");
    let done = if new { "enqueued" } else { "already-enqueued" };
    Ok(see_other(&format!("/admin/schedules?notice={done}")))
}
