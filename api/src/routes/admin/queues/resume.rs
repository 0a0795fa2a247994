//! `POST /api/v1/admin/queues/{queue}/resume`: workers take the queue's jobs again.

use actix_web::{HttpRequest, HttpResponse, post, web};

use super::pause::{PauseView, set};
use crate::extract::AuthUser;
use crate::openapi::problems::{ForbiddenProblem, ValidationProblem};
use crate::problem::ApiResult;
use crate::state::AppState;

/// Resumes a paused queue: the relays push its backlog again and its workers are woken.
/// Audited (`queue.resumed`).
#[utoipa::path(post, path = "/api/v1/admin/queues/{queue}/resume", operation_id = "resumeAdminQueue", tag = "admin",
    params(("queue" = orderly_jobs::Queue, Path, description = "the queue")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the queue, resumed (`changed: false` if it was not paused)", body = PauseView),
        (status = 403, description = "not an admin", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 422, description = "no such queue", body = ValidationProblem, content_type = "application/problem+json"),
    ))]
#[post("/admin/queues/{queue}/resume")]
pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    set(&req, &state, &caller, &path, false).await
}
