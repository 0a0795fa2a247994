//! `GET /admin`: each queue's counts, paused state and workers, the outbox's backlog, the
//! live workers and the throughput chart's sample; pausing, resuming and retrying a
//! queue's dead jobs.

use actix_web::{HttpRequest, HttpResponse, web};
use orderly_admin::jobs::{self as admin, BulkAction, JobState, QueueStats};
use orderly_db::outbox::OutboxStatus;
use orderly_db::sql::stmt;
use orderly_db::{quoted, sql};
use orderly_jobs::outbox::Window;
use orderly_jobs::pauses;
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use super::error::DashboardError;
use super::session::Admin;
use super::views::{NoticeQuery, now_text, page, see_other};
use super::{REFRESH_MS, csrf, queue_of};
use crate::state::AppState;

/// A queue's row: its counts and who drains it.
#[derive(Debug, Serialize)]
struct QueueRow {
    #[serde(flatten)]
    stats: QueueStats,
    /// Live worker processes draining it.
    workers: u64,
    /// Jobs those run at once.
    concurrency: i64,
}

/// One point of the throughput chart: what finished in the last minute, and what waits
/// for a retry now. The page's script keeps the points it has seen.
#[derive(Debug, Serialize)]
struct Sample {
    done_last_minute: u64,
    dead_last_minute: u64,
    failed: u64,
}

sql! {
    /// Jobs done and given up in the last minute, over every queue.
    SAMPLE = "SELECT (SELECT count(*) FROM outbox WHERE status = ", quoted!(OutboxStatus::Done), "
                        AND completed_at > now() - interval '1 minute') AS done,
                     (SELECT count(*) FROM outbox WHERE status = ", quoted!(OutboxStatus::Dead), "
                        AND completed_at > now() - interval '1 minute') AS dead";
}

/// Jobs done and given up in the last minute, over every queue (each count read by the
/// finished jobs' `(status, completed_at)` index).
async fn sample(db: &impl ConnectionTrait, stats: &[QueueStats]) -> Result<Sample, DbErr> {
    let row = db
        .query_one_raw(stmt(&SAMPLE, []))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("no row from the sample query".into()))?;
    Ok(Sample {
        done_last_minute: row.try_get::<i64>("", "done")?.max(0) as u64,
        dead_last_minute: row.try_get::<i64>("", "dead")?.max(0) as u64,
        failed: stats.iter().map(|s| s.failed).sum(),
    })
}

/// `GET /admin`.
pub async fn show(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, DashboardError> {
    let stats = admin::queue_stats(&state.db).await?;
    let outbox = admin::backlog(&state.db, &stats).await?;
    let workers = admin::live_workers(&state.db, Window::default().live_within).await?;
    let sample = sample(&state.db, &stats).await?;
    let queues: Vec<QueueRow> = stats
        .into_iter()
        .map(|stats| {
            let draining = workers.iter().filter_map(|w| {
                w.queues
                    .iter()
                    .find(|q| q.queue == stats.queue.as_str())
                    .map(|q| i64::from(q.concurrency))
            });
            let (count, concurrency) = draining.fold((0, 0), |(n, c), q| (n + 1, c + q));
            QueueRow {
                stats,
                workers: count,
                concurrency,
            }
        })
        .collect();
    Ok(page(
        &req,
        "queues",
        serde_json::json!({ "admin": admin.view(), "nav": "queues", "title": "Queues", "notice": query.text(), "refresh_ms": REFRESH_MS, "drawn_at": now_text(), "queues": queues, "outbox": outbox, "workers": workers, "sample": sample }),
    )?)
}

/// `POST /admin/queues/{queue}/pause`: workers stop taking the queue's jobs (running ones
/// finish), across every worker process. Audited.
pub async fn pause(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    set_paused(&admin, &req, &state, &path, &body, true).await
}

/// `POST /admin/queues/{queue}/resume`. Audited.
pub async fn resume(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    set_paused(&admin, &req, &state, &path, &body, false).await
}

async fn set_paused(
    admin: &Admin,
    req: &HttpRequest,
    state: &AppState,
    name: &str,
    body: &[u8],
    pause: bool,
) -> Result<HttpResponse, DashboardError> {
    let _: serde::de::IgnoredAny = csrf::verified_form(admin, req, body)?;
    let queue = queue_of(name)?;
    let mut redis = state.redis.clone();
    pauses::set_paused(
        &state.db,
        &mut redis,
        &state.settings.redis_prefix,
        queue,
        pause,
        admin.actor(),
    )
    .await?;
    let done = if pause { "paused" } else { "resumed" };
    Ok(see_other(&format!("/admin?notice={done}")))
}

/// `POST /admin/queues/{queue}/retry-dead`: the queue's dead jobs run again (up to
/// [`admin::BULK_LIMIT`] per click), in one transaction with one audit row.
pub async fn retry_dead(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    let _: serde::de::IgnoredAny = csrf::verified_form(&admin, &req, &body)?;
    let queue = queue_of(&path)?;
    let bulk = admin::bulk(
        &state.db,
        BulkAction::Retry,
        Some(queue),
        JobState::Dead,
        admin.actor(),
    )
    .await?;
    let done = if bulk.more {
        "bulk-retried-more"
    } else {
        "bulk-retried"
    };
    Ok(see_other(&format!("/admin?notice={done}")))
}
