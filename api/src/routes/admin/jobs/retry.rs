//! `POST /api/v1/admin/jobs/{queue}/{job_id}/retry`: a dead or failed job runs again now.

use actix_web::{HttpRequest, HttpResponse, post, web};
use orderly_admin::jobs::{self as admin, JobView};

use super::super::operator;
use crate::extract::AuthUser;
use crate::openapi::problems::{
    ConflictProblem, ForbiddenProblem, NotFoundProblem, ValidationProblem,
};
use crate::problem::ApiResult;
use crate::state::AppState;

/// Puts a dead job, or one waiting for a retry, back to `pending`, due now. Its attempt
/// count is kept (a transient failure past its type's limit makes it dead again); a dead
/// message job's message is reopened. Atomic against a worker ending the job at the same
/// moment; audited (`job.retried`).
#[utoipa::path(post, path = "/api/v1/admin/jobs/{queue}/{job_id}/retry", operation_id = "retryAdminJob", tag = "admin",
    params(
        ("queue" = orderly_jobs::Queue, Path, description = "the job's queue"),
        ("job_id" = uuid::Uuid, Path, description = "the job's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the job, back to pending", body = JobView),
        (status = 403, description = "not an admin", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 404, description = "no such job in that queue", body = NotFoundProblem, content_type = "application/problem+json"),
        (status = 409, description = "the job is not dead or failed (pending, running, done)", body = ConflictProblem, content_type = "application/problem+json"),
        (status = 422, description = "no such queue", body = ValidationProblem, content_type = "application/problem+json"),
    ))]
#[post("/admin/jobs/{queue}/{job_id}/retry")]
pub async fn retry(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let request_id = operator::request_id(&req);
    let actor = operator::actor(&caller, request_id.as_deref())?;
    let queue = operator::queue(&path.0)?;
    let id = operator::job_id(&path.1, queue)?;
    let job = admin::retry(&state.db, queue, id, actor).await?;
    Ok(HttpResponse::Ok().json(job))
}
