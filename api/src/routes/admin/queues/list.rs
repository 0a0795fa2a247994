//! `GET /api/v1/admin/queues`: per queue its counts, age and paused state, the outbox's
//! backlog, and the live worker processes.

use actix_web::{HttpResponse, get, web};
use orderly_admin::jobs::{self as admin, Backlog, LiveWorker, QueueStats};
use orderly_db::users::Role;
use orderly_jobs::outbox::Window;
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::AuthUser;
use crate::openapi::problems::ForbiddenProblem;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Every queue, the outbox's backlog and the workers.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuesView {
    /// One entry per queue, in the order workers start them.
    pub queues: Vec<QueueStats>,
    /// Due jobs not yet pushed to Redis, over every queue.
    pub outbox: Backlog,
    /// Worker processes heart-beaten within the relay's liveness window (30 s).
    pub workers: Vec<LiveWorker>,
}

/// Each queue's counts (`pending`: due, in PostgreSQL or waiting in Redis; `scheduled`:
/// due later; `failed`: waiting for a retry after an error; `running`; `dead`;
/// `done_last_hour`), the age of its oldest pending job, whether it is paused; the outbox's
/// backlog; the live workers. Every count is read by a partial index.
#[utoipa::path(get, path = "/api/v1/admin/queues", operation_id = "listAdminQueues", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "every queue's counts, the outbox's backlog and the live workers", body = QueuesView),
        (status = 403, description = "not an admin", body = ForbiddenProblem, content_type = "application/problem+json"),
    ))]
#[get("/admin/queues")]
pub async fn list(state: web::Data<AppState>, caller: AuthUser) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin])?;
    let queues = admin::queue_stats(&state.db).await?;
    let outbox = admin::backlog(&state.db, &queues).await?;
    let workers = admin::live_workers(&state.db, Window::default().live_within).await?;
    Ok(HttpResponse::Ok().json(QueuesView {
        queues,
        outbox,
        workers,
    }))
}
