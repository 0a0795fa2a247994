//! `POST /api/v1/admin/jobs/retry?queue=&state=dead`: retry a queue's dead or failed jobs.

use actix_web::{HttpRequest, HttpResponse, post, web};
use orderly_admin::jobs::{self as admin, Bulk, BulkAction, JobState};
use orderly_jobs::Queue;
use serde::Deserialize;
use utoipa::IntoParams;
use validator::Validate;

use super::super::operator;
use crate::extract::AuthUser;
use crate::extract::query::parse;
use crate::openapi::problems::{ForbiddenProblem, ValidationProblem};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// Which jobs.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BulkQuery {
    /// Only this queue (every queue if absent).
    #[param(value_type = Option<Queue>)]
    pub queue: Option<Queue>,
    /// The jobs' state.
    #[param(value_type = JobState)]
    pub state: JobState,
}

/// Retries up to 1 000 jobs of a queue that are `dead` or `failed` (waiting for a retry),
/// oldest first, as the single retry does, in one transaction with one audit row
/// (`jobs.retried`, entity `queue`). `more` says whether matching jobs are left.
#[utoipa::path(post, path = "/api/v1/admin/jobs/retry", operation_id = "retryAdminJobs", tag = "admin", params(BulkQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the jobs put back to pending, and whether more are left", body = Bulk),
        (status = 403, description = "not an admin", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 422, description = "an unknown queue, or a state other than `dead` or `failed`", body = ValidationProblem, content_type = "application/problem+json"),
    ))]
#[post("/admin/jobs/retry")]
pub async fn retry_many(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
) -> ApiResult<HttpResponse> {
    let request_id = operator::request_id(&req);
    let actor = operator::actor(&caller, request_id.as_deref())?;
    let query = parse::<BulkQuery>(req.query_string())?;
    if !matches!(query.state, JobState::Dead | JobState::Failed) {
        return Err(ApiError::invalid(
            "state",
            "only `dead` or `failed` jobs can be retried",
        ));
    }
    let done = admin::bulk(
        &state.db,
        BulkAction::Retry,
        query.queue,
        query.state,
        actor,
    )
    .await?;
    Ok(HttpResponse::Ok().json(done))
}
