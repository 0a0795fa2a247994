//! `DELETE /api/v1/admin/jobs?queue=&state=dead`: discard a queue's jobs in one state.

use actix_web::{HttpRequest, HttpResponse, delete, web};
use orderly_admin::jobs::{self as admin, Bulk, BulkAction, JobState};

use super::super::operator;
use super::retry_many::BulkQuery;
use crate::extract::AuthUser;
use crate::extract::query::parse;
use crate::openapi::problems::{ForbiddenProblem, ValidationProblem};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// Discards up to 1 000 jobs of a queue that are `dead`, `failed`, `scheduled` or
/// `pending`, oldest first, as the single discard does, in one transaction with one audit
/// row (`jobs.discarded`, entity `queue`). `more` says whether matching jobs are left.
#[utoipa::path(delete, path = "/api/v1/admin/jobs", operation_id = "discardAdminJobs", tag = "admin", params(BulkQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the jobs discarded, and whether more are left", body = Bulk),
        (status = 403, description = "not an admin", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 422, description = "an unknown queue, or a `running` or `done` state", body = ValidationProblem, content_type = "application/problem+json"),
    ))]
#[delete("/admin/jobs")]
pub async fn discard_many(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
) -> ApiResult<HttpResponse> {
    let request_id = operator::request_id(&req);
    let actor = operator::actor(&caller, request_id.as_deref())?;
    let query = parse::<BulkQuery>(req.query_string())?;
    if matches!(query.state, JobState::Running | JobState::Done) {
        return Err(ApiError::invalid(
            "state",
            "running or finished jobs cannot be discarded",
        ));
    }
    let done = admin::bulk(
        &state.db,
        BulkAction::Discard,
        query.queue,
        query.state,
        actor,
    )
    .await?;
    Ok(HttpResponse::Ok().json(done))
}
