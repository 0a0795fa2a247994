//! `GET /api/v1/admin/jobs`: the outbox's jobs, filtered, newest first.

use actix_web::{HttpRequest, HttpResponse, get, web};
use orderly_admin::jobs::{self as admin, JobFilter, JobState, JobView};
use orderly_db::users::Role;
use orderly_jobs::{JobKind, Queue};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;
use validator::Validate;

use crate::extract::query::parse;
use crate::extract::{AuthUser, Page, PageParams};
use crate::openapi::problems::{ForbiddenProblem, ValidationProblem};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// Filters and page.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// 1-based page number.
    #[validate(range(min = 1, max = 1000000, message = "must be between 1 and 1000000"))]
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    /// Items per page (max 100).
    #[validate(range(min = 1, max = 100, message = "must be between 1 and 100"))]
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u64>,
    /// Only this queue: `bookings`, `payments`, `email`, `sms` or `reports`.
    #[param(value_type = Option<Queue>)]
    pub queue: Option<Queue>,
    /// Only jobs in this state: `pending` (due, in PostgreSQL or waiting in Redis),
    /// `scheduled` (due later), `failed` (waiting for a retry after an error), `running`,
    /// `dead` or `done`.
    #[param(value_type = Option<JobState>)]
    pub state: Option<JobState>,
    /// Only this job type (`send_email`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub job_type: Option<String>,
    /// Only jobs about this booking, directly or through one of its messages.
    pub booking_id: Option<Uuid>,
}

/// The jobs, newest first, with their state, attempts, last error, due time, next retry,
/// lease holder and its heartbeat's age, request id and booking. `count` stops at 10 000
/// (narrow the filter to see further).
#[utoipa::path(get, path = "/api/v1/admin/jobs", operation_id = "listAdminJobs", tag = "admin", params(JobQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "a page of jobs, newest first", body = Page<JobView>),
        (status = 403, description = "not an admin", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 422, description = "an unknown queue, state or type, or a bad page", body = ValidationProblem, content_type = "application/problem+json"),
    ))]
#[get("/admin/jobs")]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin])?;
    let query = parse::<JobQuery>(req.query_string())?;
    if let Some(job_type) = query.job_type.as_deref()
        && JobKind::parse(job_type).is_none()
    {
        return Err(ApiError::invalid(
            "type",
            format!("unknown job type `{job_type}`"),
        ));
    }
    let params = PageParams::new(query.page, query.page_size);
    let filter = JobFilter {
        queue: query.queue,
        state: query.state,
        job_type: query.job_type,
        booking_id: query.booking_id,
    };
    let (count, jobs) = admin::list(&state.db, &filter, params.offset(), params.page_size).await?;
    Ok(HttpResponse::Ok().json(Page::new(&req, params, count, jobs)))
}
