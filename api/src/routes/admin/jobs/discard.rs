//! `DELETE /api/v1/admin/jobs/{queue}/{job_id}`: a job that is not running is dropped.

use actix_web::{HttpRequest, HttpResponse, delete, web};
use orderly_admin::jobs as admin;

use super::super::operator;
use crate::extract::AuthUser;
use crate::openapi::problems::{
    ConflictProblem, ForbiddenProblem, NotFoundProblem, ValidationProblem,
};
use crate::problem::ApiResult;
use crate::state::AppState;

/// Discards a dead, failed, scheduled or pending job: its row is deleted (a copy waiting
/// in Redis is fenced out when fetched), and a message it was to send becomes `failed`.
/// A running or finished job is refused. Audited (`job.discarded`, with its payload).
#[utoipa::path(delete, path = "/api/v1/admin/jobs/{queue}/{job_id}", operation_id = "discardAdminJob", tag = "admin",
    params(
        ("queue" = orderly_jobs::Queue, Path, description = "the job's queue"),
        ("job_id" = uuid::Uuid, Path, description = "the job's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "discarded"),
        (status = 403, description = "not an admin", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 404, description = "no such job in that queue", body = NotFoundProblem, content_type = "application/problem+json"),
        (status = 409, description = "the job is running or done", body = ConflictProblem, content_type = "application/problem+json"),
        (status = 422, description = "no such queue", body = ValidationProblem, content_type = "application/problem+json"),
    ))]
#[delete("/admin/jobs/{queue}/{job_id}")]
pub async fn discard(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let request_id = operator::request_id(&req);
    let actor = operator::actor(&caller, request_id.as_deref())?;
    let queue = operator::queue(&path.0)?;
    let id = operator::job_id(&path.1, queue)?;
    admin::discard(&state.db, queue, id, actor).await?;
    Ok(HttpResponse::NoContent().finish())
}
