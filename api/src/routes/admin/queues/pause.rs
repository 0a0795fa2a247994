//! `POST /api/v1/admin/queues/{queue}/pause`: workers stop taking the queue's jobs.

use actix_web::{HttpRequest, HttpResponse, post, web};
use orderly_jobs::Queue;
use orderly_jobs::pauses;
use serde::Serialize;
use utoipa::ToSchema;

use super::super::operator;
use crate::extract::AuthUser;
use crate::openapi::problems::{ForbiddenProblem, ValidationProblem};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// A queue's paused state after the action.
#[derive(Debug, Serialize, ToSchema)]
pub struct PauseView {
    /// The queue.
    pub queue: Queue,
    /// Whether it is paused now.
    pub paused: bool,
    /// Whether this request changed it (`false`: it already was).
    pub changed: bool,
}

/// Pauses a queue across every worker process: the relays push none of its jobs to Redis
/// and workers fetch none of those already there; running jobs finish. Jobs keep being
/// enqueued (as `pending`). Audited (`queue.paused`).
#[utoipa::path(post, path = "/api/v1/admin/queues/{queue}/pause", operation_id = "pauseAdminQueue", tag = "admin",
    params(("queue" = orderly_jobs::Queue, Path, description = "the queue")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the queue, paused (`changed: false` if it already was)", body = PauseView),
        (status = 403, description = "not an admin", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 422, description = "no such queue", body = ValidationProblem, content_type = "application/problem+json"),
    ))]
#[post("/admin/queues/{queue}/pause")]
pub async fn pause(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    set(&req, &state, &caller, &path, true).await
}

/// Pauses (`true`) or resumes a queue, as the admin `caller`.
pub(super) async fn set(
    req: &HttpRequest,
    state: &AppState,
    caller: &AuthUser,
    name: &str,
    paused: bool,
) -> ApiResult<HttpResponse> {
    let request_id = operator::request_id(req);
    let actor = operator::actor(caller, request_id.as_deref())?;
    let queue = operator::queue(name)?;
    let mut redis = state.redis.clone();
    let changed = pauses::set_paused(
        &state.db,
        &mut redis,
        &state.settings.redis_prefix,
        queue,
        paused,
        actor,
    )
    .await
    .map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok().json(PauseView {
        queue,
        paused,
        changed,
    }))
}
